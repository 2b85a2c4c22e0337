//! Replies from recipients (MO messages): what they mean and what to do.

pub mod keywords;
