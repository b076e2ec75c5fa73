//! charisma connector (being built).
