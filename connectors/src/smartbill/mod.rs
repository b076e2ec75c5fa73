//! smartbill connector (being built).
