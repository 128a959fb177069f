"""Adapters: the outside world (files, clocks, calendars, mail) behind the domain's ports."""
