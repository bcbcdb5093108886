"""The process exit codes, documented in the README."""

EXIT_OK = 0  # every polled source was fine
EXIT_SOURCES_FAILED = 1  # the round ran, some sources failed (the others were stored)
EXIT_USAGE = 2  # a usage or config error
EXIT_UNHEALTHY = 1  # `health`: the last round is overdue, or the database cannot be read
