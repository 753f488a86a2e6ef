"""Notebook 02: spoken digits (FSDD / AudioMNIST), mel spectrograms, speaker leakage, fusion."""
