//! Loading and validating settings: defaults < TOML file < env file < environment < flags.
//!
//! The environment is read here and nowhere else, and no file is read unless the operator names
//! it (`--config`, `--env-file`): a `.env` found in the working directory or above is never
//! read, so a repository a desktop host opens cannot choose the token command, the authority or
//! where tokens are sent. serde and the `config` crate turn every source
//! into the typed fields of one struct (`Raw`, one field per row of [`SETTINGS`]); the value
//! types in `value` accept a TOML value and its text form alike, so `port = 8013` and `PORT=8013`,
//! `azure_required_scopes = ["a", "b"]` and `AZURE_REQUIRED_SCOPES=a,b` mean the same. Built-in
//! defaults are the `default` column of [`SETTINGS`]. Every value is checked before anything
//! starts; a bad one stops start-up with one line that names the setting where it was written.
//!
//! Adding a setting: one row in `table.rs`, one field in `Raw` (`sources.rs`; named like the
//! row, in lower case, typed with a `value` type; `Option<…>` when the row has no default), and
//! its use in `validate` (`settings.rs`), or in `entra.rs` / `downstream.rs` for those parts.
//!
//! | File | Concern |
//! |---|---|
//! | `table.rs` | every setting: name, default, help (the table in docs/configuration.md, `.env.example` and `config.example.toml` are tested against it) |
//! | `settings.rs` | [`Settings`], the validated result, and how it is built from the typed sources (`Raw`) |
//! | `sources.rs` | the sources and their precedence: defaults < `--config` < `--env-file` < environment < flags |
//! | `error.rs` | [`ConfigError`]: one line naming the setting as its source wrote it |
//! | `entra.rs` | the Entra verifier's part |
//! | `downstream.rs` | the server credential for on-behalf-of calls |
//! | `value.rs` | value types that read a TOML value and its text form alike |

mod downstream;
mod entra;
mod error;
mod settings;
mod sources;
pub mod table;
#[cfg(test)]
mod tests;
mod value;

pub use error::ConfigError;
pub use settings::{AuthSettings, DownstreamSettings, GroupSettings, Settings, StdioSettings, ToolOverride};
pub use table::{setting, Setting, SETTINGS};

use downstream::downstream_settings;
use entra::entra_config;
use error::{unreadable, value_error, written_name};
use sources::{merge, Raw, Source};

/// The TOML key of the per-tool table (`[tools.<name>]`, docs/ARCHITECTURE.md#per-tool-authorization). Not a row of [`SETTINGS`]:
/// it has no environment form.
pub const TOOLS_KEY: &str = "tools";
/// The TOML key of the scope and app-role hierarchy table (`[implies]`,
/// docs/configuration.md#scope-hierarchies). No environment form either.
pub const IMPLIES_KEY: &str = "implies";
