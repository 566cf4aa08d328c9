"""The Task Graph: compile the pipeline to a snowflake.core dagv1 DAG, the body every task runs,
how outputs travel between tasks, the local emulator, the plan, the schedule and deploy.
"""
