"""The ``sampan`` command line: kubectl's verbs over the control service's API.

Layout (command definitions kept apart from the code they run, as k3s does):

- ``main`` builds the argparse parser (every subcommand and flag) and runs
  the chosen command; it is the console entry point.
- ``commands/<name>.py`` hold one async ``run(args) -> int`` each; they talk
  to the control service only through ``control.client.Client``
  (``commands/control.py`` starts the service itself).
- Shared pieces, each a small module: ``targets`` (KIND NAME arguments),
  ``connection`` (--server, -n), ``manifest_files`` (-f), ``merge_patch``
  (apply's three-way patch), ``printers`` (table columns per kind),
  ``tabwriter`` (Go's column alignment), ``durations`` (kubectl's ages),
  ``describers`` (describe's text), ``output`` (yaml/json/name),
  ``objects`` (names of any object) and ``errors`` (one-line errors).

Output follows kubectl's wording and layout wherever a kubectl user would
notice a difference; every expected failure is one line on stderr and exit 1.
"""
