"""The pipeline declared as data: tables, registers, priorities, cookies, flows."""
