"""The web face: participant pages reached through signed links, and the coordinator's dashboard."""
