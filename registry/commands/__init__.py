"""Subcommands of the ``mlledger`` command line that ``registry.cli`` gathers: the
audit commands (``audit``) and the compliance commands (``report``, ``export``).
Interfaces, like the API: they may use every layer below them."""

#: Help of every command's ``--db``.
DB_HELP = "database URL or SQLite file (default: MLLEDGER_DB or ./.mlledger/ledger.db)"
