"""What a gate leads to: the built-in actions (one table, :mod:`.table`) and the user's functions.

``promote`` and ``alert`` are written once and run the same way locally, on the emulator and in a
task on an account; only the registry and the notification channel in their context
(:mod:`.context`) differ. :mod:`.run` carries out the action a gate side names. Nothing is imported
here: the table is read by the gate marker's check before any graph exists.
"""
