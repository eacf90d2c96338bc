//! Output on stdout: tables for people, stable JSON for machines, Markdown for reports.
