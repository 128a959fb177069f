"""Emails: template contexts, rendering, MIME messages and calendar invitations."""
