"""The feature tables, one SQL model a file: `<table>.sql` builds `features.<table>` (its asset key)."""
