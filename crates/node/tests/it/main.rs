//! deed-node integration tests: the BFT producer on a real loopback network and in a
//! deterministic simulation.

mod bft_net;
mod bft_sim;
