"""A service that runs mentorship programs by itself."""
