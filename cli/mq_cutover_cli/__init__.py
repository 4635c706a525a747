"""The mq-cutover command line: the offline simulator and its harness (not deployed)."""
