//! Round plans, loss tables and loss-aware multiple-round selection
