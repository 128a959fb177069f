"""Every limit on what the configuration files may hold, in one place.

Each one bounds the time or memory that reading a file can cost, far above what a real
cohort needs; going over one is a configuration problem like any other. The README's
"Limits" section lists them.
"""

from __future__ import annotations

from datetime import date

MB = 1_000_000

# Files: each is checked with stat before a byte of it is read.
MAX_COHORT_BYTES = 1 * MB  # a cohort file is a page of settings
MAX_PAIRINGS_BYTES = 10 * MB  # a CSV pairings file: room for MAX_ROWS rows of a few hundred characters each
MAX_YAML_PAIRINGS_BYTES = 3 * MB  # a YAML one: the YAML parser reads about 2 MB a second, CSV is read 50 times faster
MAX_ICS_BYTES = 2 * MB  # a year of a busy calendar exports to a few hundred kB
MAX_CREDENTIALS_BYTES = 1 * MB  # google.credentials: a key or token file is a few kB of JSON
SYSTEM_FOLDERS = ("/proc", "/sys", "/dev")  # files there pass for regular ones but hold process data or never end

# Pairings (CSV or YAML).
MAX_ROWS = 20_000  # pairs in one file; a large program has hundreds
MAX_COLUMNS = 200  # header cells, or keys of one YAML pair; there are 24 known columns
MAX_CELL_CHARS = 2_000  # one value (notes are the longest); also caps what a message could echo

# YAML (cohort file and YAML pairings). Anchors are allowed, aliases (*name) never: a
# settings file has no use for them and they let a small file stand for a huge one.
MAX_YAML_DEPTH = 20  # nested lists and groups; the cohort file nests 4 deep
MAX_YAML_NODES = 100_000  # values, lists and groups in one file, about 20 microseconds each to parse (some 5,000 pairs)

# The program, which every other date is measured against.
EARLIEST_PROGRAM_DATE = date(2000, 1, 1)  # older dates are typing mistakes
LATEST_PROGRAM_DATE = date(2100, 12, 31)  # later ones too, and date arithmetic breaks near year 9999
MAX_PROGRAM_DAYS = 731  # two years, so everything derived from the program stays small
WINDOW_MARGIN_DAYS = 7  # busy time and blackout dates this close to the program still count
MAX_OFFSET_DAYS = 366  # how far an email may be timed before or after its anchor

# Busy calendars (.ics), per file, judged before anything is expanded.
MAX_ICS_REPEAT_STEPS = 200_000  # repeats from an event's first date to the program's end (the expander walks them all)
MAX_ICS_BUSY_TIMES = 10_000  # busy times inside the program window; each costs about 50 microseconds
MAX_ICS_SECONDS = 3.0  # processor time to expand one file: stops rules that almost never match, which scan to year 9999

# Messages.
MAX_PROBLEMS_PER_FILE = 200  # then reading the file stops: the rest is most likely the same mistake again
QUOTE_CHARS = 40  # characters of an input value a message shows
PATH_CHARS = 200  # characters of a file path a message shows
