"""Fit fractions, their errors and the fit-fraction penalty of a J/psi -> gamma pi pi partial-wave fit."""
