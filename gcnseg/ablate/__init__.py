"""The ablation tables of Section 4.1 (Tables 1-5), trained and
measured under one budget and one seed, beside the paper's numbers.

- :mod:`.tables`: the table files (their format; the order a network's config is built in);
  the paper's tables ship in ``gcnseg/ablate/tables/``.
- :mod:`.runner`: budgets, the networks' configs, training with resume and skip.
- :mod:`.report`: the rows, ``tableN.md`` / ``tableN.json``, head parameters
  (the chart: :func:`gcnseg.plots.plot_table`).
- the command, ``gcnseg ablate``, is :mod:`gcnseg.commands.ablate`.
"""

from .report import format_markdown, head_params, network_row, write_report
from .runner import NEUTRAL_KEYS, ablate, budget_label, common_config, network_configs, parse_budget, run_network
from .tables import COLUMNS, LABELS, METRICS, Network, Table, load_table, slugify, table_path, tables_dir

__all__ = [
    "COLUMNS",
    "LABELS",
    "METRICS",
    "NEUTRAL_KEYS",
    "Network",
    "Table",
    "ablate",
    "budget_label",
    "common_config",
    "format_markdown",
    "head_params",
    "load_table",
    "network_configs",
    "network_row",
    "parse_budget",
    "run_network",
    "slugify",
    "table_path",
    "tables_dir",
    "write_report",
]
