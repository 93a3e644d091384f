"""One module per `esfit` subcommand; each only parses options and calls library functions."""
