//! deed-store integration tests: the copy-detection suite and the parser fuzz targets.

mod copies;
mod fuzz;
