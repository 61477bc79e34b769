//! Running scalar code compiled for the FMA instruction set.
//!
//! `f64::mul_add` and `f32::mul_add` are always one fused multiply-add, rounded once; where
//! the crate is compiled without FMA (the x86-64 baseline) each one is a call into the
//! runtime's `fma` routine, which checks the CPU and then executes the same instruction.
//! [`Fma::run`] compiles a [`FmaWork`] (whose `run` is `#[inline(always)]`, and so is
//! compiled inside) with FMA enabled, so the fused operations it inlines become single
//! instructions: the same bits, without the calls.
#![allow(unsafe_code)]

use super::FmaWork;

/// Proof that the CPU has FMA.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fma(());

impl Fma {
    /// `Some` only when the CPU has FMA.
    pub(crate) fn new() -> Option<Self> {
        is_x86_feature_detected!("fma").then_some(Fma(()))
    }

    /// `w.run()`, compiled with FMA enabled.
    #[inline]
    pub(crate) fn run<W: FmaWork>(&self, w: W) -> W::Out {
        // SAFETY: `self` exists only if the CPU has FMA (`new`).
        unsafe { run_fma(w) }
    }
}

#[target_feature(enable = "fma")]
unsafe fn run_fma<W: FmaWork>(w: W) -> W::Out {
    w.run()
}

/// Proof that the CPU has AVX-512F and AVX-512DQ (and so FMA).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512Fma(());

impl Avx512Fma {
    /// `Some` only when the CPU has AVX-512F, AVX-512DQ and FMA.
    pub(crate) fn new() -> Option<Self> {
        (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq") && is_x86_feature_detected!("fma"))
            .then_some(Avx512Fma(()))
    }

    /// `w.run()`, compiled with AVX-512 (F, DQ) and FMA enabled: loops the compiler
    /// vectorizes get 16 f32 or 8 f64 lanes. The IEEE operations are the same, so are
    /// the bits.
    #[inline]
    pub(crate) fn run<W: FmaWork>(&self, w: W) -> W::Out {
        // SAFETY: `self` exists only if the CPU has these features (`new`).
        unsafe { run_avx512(w) }
    }
}

#[target_feature(enable = "avx512f,avx512dq,avx2,fma")]
unsafe fn run_avx512<W: FmaWork>(w: W) -> W::Out {
    w.run()
}
