//! A tiny command-line parser for the example binaries: `--name value`, `--name=value`
//! and `--flag`, with `--help` and precise errors ([`or_exit`]). No dependencies.

use std::fmt::Display;
use std::str::FromStr;

/// A command-line error, printed with the usage hint by [`or_exit`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// An option that takes a value was given without one.
    #[error("option --{0} needs a value")]
    MissingValue(String),
    /// An option's value did not parse.
    #[error("invalid value {value:?} for --{name}: {reason}")]
    BadValue {
        /// The option.
        name: String,
        /// The value given.
        value: String,
        /// Why it did not parse.
        reason: String,
    },
    /// A required option is absent.
    #[error("option --{0} is required")]
    Required(String),
    /// An argument no option consumed.
    #[error("unknown argument {0:?}")]
    Unknown(String),
}

/// Arguments still to be consumed; each accessor removes what it matched.
#[derive(Debug, Clone)]
pub struct Args {
    prog: String,
    rest: Vec<String>,
}

impl Args {
    /// The process arguments. Prints `usage` and exits with status 0 on `-h`/`--help`.
    pub fn from_env(usage: &str) -> Args {
        let mut it = std::env::args();
        let prog = it.next().unwrap_or_else(|| "lrp-example".into());
        let args = Args::new(prog, it.collect());
        if args.rest.iter().any(|a| a == "--help" || a == "-h") {
            println!("{usage}");
            std::process::exit(0);
        }
        args
    }

    /// Arguments from a list (for tests).
    pub fn new(prog: String, rest: Vec<String>) -> Args {
        Args { prog, rest }
    }

    /// The program name.
    pub fn prog(&self) -> &str {
        &self.prog
    }

    /// Whether `--name` is present (removes it).
    pub fn flag(&mut self, name: &str) -> bool {
        let want = format!("--{name}");
        let before = self.rest.len();
        self.rest.retain(|a| *a != want);
        self.rest.len() != before
    }

    /// The value of `--name value` or `--name=value`, parsed (removes both).
    pub fn value<T>(&mut self, name: &str) -> Result<Option<T>, CliError>
    where
        T: FromStr,
        T::Err: Display,
    {
        let want = format!("--{name}");
        let prefix = format!("--{name}=");
        let Some(i) = self
            .rest
            .iter()
            .position(|a| *a == want || a.starts_with(&prefix))
        else {
            return Ok(None);
        };
        let raw = if self.rest[i] == want {
            if i + 1 >= self.rest.len() {
                return Err(CliError::MissingValue(name.into()));
            }
            let v = self.rest.remove(i + 1);
            self.rest.remove(i);
            v
        } else {
            let a = self.rest.remove(i);
            a[prefix.len()..].to_owned()
        };
        raw.parse::<T>().map(Some).map_err(|e| CliError::BadValue {
            name: name.into(),
            value: raw.clone(),
            reason: e.to_string(),
        })
    }

    /// The value of `--name`, or `default` when absent.
    pub fn value_or<T>(&mut self, name: &str, default: T) -> Result<T, CliError>
    where
        T: FromStr,
        T::Err: Display,
    {
        Ok(self.value(name)?.unwrap_or(default))
    }

    /// The value of `--name`, which must be present.
    pub fn required<T>(&mut self, name: &str) -> Result<T, CliError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.value(name)?
            .ok_or_else(|| CliError::Required(name.into()))
    }

    /// Fail if any argument was not consumed.
    pub fn finish(&self) -> Result<(), CliError> {
        match self.rest.first() {
            Some(a) => Err(CliError::Unknown(a.clone())),
            None => Ok(()),
        }
    }
}

/// Unwrap a parse result, or print the error with a `--help` hint and exit with status 2.
pub fn or_exit<T>(r: Result<T, CliError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => {
            let prog = std::env::args()
                .next()
                .unwrap_or_else(|| "lrp-example".into());
            eprintln!("{prog}: {e}\nTry '{prog} --help'.");
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Args {
        Args::new("t".into(), v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn values_flags_and_leftovers() {
        let mut a = args(&["--port", "9000", "--sim", "--rate=5", "extra"]);
        assert_eq!(a.value::<u16>("port"), Ok(Some(9000)));
        assert!(a.flag("sim"));
        assert!(!a.flag("sim"));
        assert_eq!(a.value_or::<u32>("rate", 1), Ok(5));
        assert_eq!(a.value_or::<u32>("count", 7), Ok(7));
        assert_eq!(a.finish(), Err(CliError::Unknown("extra".into())));
    }

    #[test]
    fn errors_name_the_option() {
        let mut a = args(&["--port", "x"]);
        assert!(
            matches!(a.value::<u16>("port"), Err(CliError::BadValue { name, .. }) if name == "port")
        );
        let mut a = args(&["--port"]);
        assert_eq!(
            a.value::<u16>("port"),
            Err(CliError::MissingValue("port".into()))
        );
        let mut a = args(&[]);
        assert_eq!(
            a.required::<u16>("port"),
            Err(CliError::Required("port".into()))
        );
        assert_eq!(a.finish(), Ok(()));
    }
}
