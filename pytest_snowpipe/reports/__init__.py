"""What a run leaves for people: the terminal summary, report.json / report.md and the
evidence they carry (champions, comparisons, failures).
"""
