//! deed-node integration tests: admission, the BFT producer on a real loopback network and in a
//! deterministic simulation, blob replication between validators, full nodes.

mod admit;
mod bft_net;
mod bft_sim;
mod blob_net;
mod full_node;
