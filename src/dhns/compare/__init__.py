"""Does DHNS help? The paired comparison of negative samplers, from DVC experiments to results tables.

`arms` says what differs between the arms, `runner` runs the missing cells as DVC experiments, `cells`
stores each finished one as a file under docs/results/cells, and `tables` renders docs/results/README.md.
"""
