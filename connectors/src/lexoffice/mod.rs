//! lexoffice connector (being built).
