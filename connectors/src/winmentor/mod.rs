//! winmentor connector (being built).
