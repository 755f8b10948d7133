"""Outbound adapters: AMI, database, mail. The only modules that speak those protocols."""
