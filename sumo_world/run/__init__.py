"""Running agents on routes: the process per route and resumable results (runner), one route run and its tick."""
