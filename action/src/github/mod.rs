//! `rotor action` and `rotor report`: GitHub runner integration, Markdown reports, sticky comments, audit PRs.
