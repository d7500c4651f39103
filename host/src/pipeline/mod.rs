//! Stages: decode once → pre-filters on RGBA → model job → post-filters → outputs with provenance.

pub mod edit;
pub mod outputs;
pub mod sheet;
pub mod steps;

pub use edit::{EditRequest, EditResult, edit, finish_job};
pub use steps::{Catalog, Step};
