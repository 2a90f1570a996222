//! The one place a dimension is declared.
//!
//! `dimensions!` takes each dimension once — its name, type, default values, the short key
//! in step labels, the value assumed for result files written before it existed, and its
//! command-line parser — and generates everything that lists dimensions: [`Dimensions`]
//! (the swept values), [`Case`] (one explicit step), [`StepConfig`] (one step's setting),
//! the label and per-dimension text of a step, the cartesian product, the emptiness check and
//! the `--<dimension>` flags ([`DimensionArgs`]). Adding a dimension is one entry in
//! `scenario.rs` plus whatever the new setting *does* (a producer property, a topic setting).
//!
//! [`Dimensions`]: super::Dimensions
//! [`Case`]: super::Case
//! [`StepConfig`]: super::StepConfig
//! [`DimensionArgs`]: super::DimensionArgs

/// Declares the dimensions; see the module documentation.
macro_rules! dimensions {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident : $ty:ty = [$($default:expr),* $(,)?],
            flag $short:literal, unit $unit:literal, legacy $legacy:expr, parse $parse:path;
    )*) => {
        /// The swept settings. Every list must be non-empty; single values are fixed settings.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Dimensions {
            $( $(#[doc = $doc])* pub $name: Vec<$ty>, )*
        }

        impl Default for Dimensions {
            /// The quick start: open-loop rate steps on one small configuration grid, short
            /// enough for about a minute and a half on the embedded cluster.
            fn default() -> Self {
                Dimensions { $( $name: vec![$($default),*], )* }
            }
        }

        /// One explicit case; unset fields take the first value of the dimension.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Case {
            $( $(#[doc = $doc])* pub $name: Option<$ty>, )*
        }

        /// The full setting of one step.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(default)]
        pub struct StepConfig {
            $( $(#[doc = $doc])* pub $name: $ty, )*
        }

        impl Default for StepConfig {
            /// What a result file written before a dimension existed meant by its absence.
            fn default() -> Self {
                StepConfig { $( $name: $legacy, )* }
            }
        }

        /// The names of the dimensions, in table order.
        pub const DIMENSIONS: &[&str] = &[$(stringify!($name)),*];

        impl StepConfig {
            /// `batch=16384 linger=5ms compression=zstd …`: stable, used to match steps in `compare`.
            pub fn label(&self) -> String {
                let parts: Vec<String> = vec![$( format!("{}={}{}", $short, self.$name, $unit) ),*];
                parts.join(" ")
            }

            /// The label without the rate: the configuration a capacity search varies the rate of.
            pub fn label_without_rate(&self) -> String {
                let parts: Vec<String> = vec![$( format!("{}={}{}", $short, self.$name, $unit) ),*];
                parts.into_iter().filter(|p| !p.starts_with("rate=")).collect::<Vec<_>>().join(" ")
            }

            /// The value of a dimension, as text (for charts and tables).
            pub fn value(&self, dimension: &str) -> String {
                match dimension {
                    $( stringify!($name) => self.$name.to_string(), )*
                    _ => String::new(),
                }
            }
        }

        impl Case {
            /// This case's step: unset fields from the first value of each dimension.
            pub fn fill(&self, d: &Dimensions) -> StepConfig {
                let fallback = StepConfig::default();
                StepConfig { $( $name: self.$name.or(d.$name.first().copied()).unwrap_or(fallback.$name), )* }
            }
        }

        impl Dimensions {
            /// The first dimension without values.
            pub fn first_empty(&self) -> Option<&'static str> {
                $( if self.$name.is_empty() { return Some(stringify!($name)); } )*
                None
            }

            /// Steps in the cartesian product, `None` on overflow.
            pub fn product_len(&self) -> Option<usize> {
                let mut n = 1usize;
                $( n = n.checked_mul(self.$name.len())?; )*
                Some(n)
            }

            /// The cartesian product, last dimension varying fastest.
            pub fn product(&self) -> Vec<StepConfig> {
                let lens = [$( self.$name.len() ),*];
                let total = self.product_len().unwrap_or(0);
                (0..total)
                    .map(|mut i| {
                        let mut index = [0usize; DIMENSIONS.len()];
                        for k in (0..lens.len()).rev() {
                            index[k] = i % lens[k];
                            i /= lens[k];
                        }
                        let mut at = index.into_iter();
                        StepConfig { $( $name: self.$name[at.next().unwrap_or(0)], )* }
                    })
                    .collect()
            }
        }

        /// One comma-separated flag per dimension (`--linger-ms 0,5,50`); a flag overrides
        /// the same dimension of `--scenario`.
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct DimensionArgs {
            $(
                $(#[doc = $doc])*
                #[arg(long, value_delimiter = ',')]
                pub $name: Vec<String>,
            )*
        }

        impl DimensionArgs {
            /// Replaces every dimension given on the command line.
            pub fn apply(&self, d: &mut Dimensions) -> Result<()> {
                $(
                    if !self.$name.is_empty() {
                        d.$name = self.$name.iter().map(|v| $parse(v.trim())).collect::<Result<Vec<$ty>>>()?;
                    }
                )*
                Ok(())
            }
        }
    };
}
