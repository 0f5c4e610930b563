//! PanGu-π Pro decoder over libtorch: training, scoring, checkpoints
