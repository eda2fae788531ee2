//! xp-ml: the ML half of xp. OPT on burn, its training, generation and evaluation,
//! the token data they read, and the backends they run on.
//!
//! Everything generic over a burn backend lives here and is compiled here, once per
//! backend; the runner (the `xp` crate) calls the plain functions of [`work`] and
//! never names a backend type. Which module may import which is written down in
//! ARCHITECTURE.md and checked by the runner's `architecture` tests.

pub mod backend;
pub mod data;
pub mod eval;
pub mod generate;
pub mod model;
pub mod tokenizer;
pub mod train;
pub mod work;
