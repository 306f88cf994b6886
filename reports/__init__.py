"""Report templates (installed as factorbench.reports); generated reports land here by default."""
