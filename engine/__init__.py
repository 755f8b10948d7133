"""Veche: an audio-conference engine for Asterisk ConfBridge."""
