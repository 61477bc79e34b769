//! Fast kernels that give the same bits as the scalar reference: register-blocked,
//! packed, SIMD and threaded matrix products for MatMul, Gemm and Conv, and Erf and exact
//! Gelu from a polynomial table checked against a proven error bound, with the `erf`
//! series on several arguments at once for the elements the check cannot settle
//! (`erf_f32_many`; its module `erf` says why the bits stay those of `math::erf64`).
//!
//! # Paths
//!
//! A [`KernelPath`] names one implementation of the engine's dot product:
//! - `reference`: the plain scalar kernels in [`crate::ops`] — the specification;
//! - `scalar`: the blocked, packed driver below with a portable `f32::mul_add` tile;
//! - `avx2`: the same driver with AVX2+FMA tiles (8 columns per register);
//! - `avx512`: the same driver with AVX-512F tiles (16 columns per register).
//!
//! [`Model::run`](crate::Model::run) uses the path named by the environment variable
//! `DEED_ENGINE_KERNELS` (read once per process; `auto` or unset picks the widest path
//! the CPU has, [`KernelPath::best`]). Naming a path the CPU lacks, or an unknown name, is
//! an error of every run ([`RunError::Kernels`](crate::RunError::Kernels)), never a
//! silent fallback. [`Model::run_with_kernels`](crate::Model::run_with_kernels) picks
//! one explicitly. No aarch64 NEON path exists yet: on other CPUs `auto` is `scalar`.
//!
//! # Why every path gives the same bits
//!
//! The reference computes each output element as the blocked dot product of
//! [`crate::ops::linalg`]: K in consecutive blocks of [`DOT_BLOCK`], within a block
//! `acc = fma(a[k], b[k], acc)` from `acc = 0.0`, block results added in order to a total
//! that starts at `0.0`. The driver keeps that order per element and only changes which
//! elements are computed together:
//! - the output starts at `+0.0`, and for each K block in order a tile computes `acc` for
//!   `mr × nr` independent elements (one SIMD lane per output column, one register per
//!   row), then stores `c = c + acc` — exactly `total = total + acc`;
//! - packing copies A and B into contiguous panels; it moves values, never combines them;
//! - cache blocking splits only M and N; K is never split other than by the fixed blocks;
//! - threads split rows (or column panels) of the output, never a K block.
//!
//! The property tests below hold every path and thread count to the spec's dot product,
//! bit for bit, on random shapes and on NaN, infinities, subnormals and signed zeros.

mod erf;
mod erf_table;
mod huge;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_erf;
#[cfg(target_arch = "x86_64")]
mod x86_fma;

pub(crate) use erf::erf_f32_many;
use huge::HugeBuf;

use crate::ops::linalg::DOT_BLOCK;
use std::sync::OnceLock;

/// Scalar work that [`with_fma`] can compile with FMA. Its `run` must be
/// `#[inline(always)]` (so that it is compiled inside the FMA function), and so should the
/// functions with `mul_add` it calls, as far as practical.
pub(crate) trait FmaWork {
    type Out;
    fn run(self) -> Self::Out;
}

/// `w.run()`; on the `avx2` and `avx512` paths, when the CPU has FMA, compiled with FMA
/// so that `mul_add` is one instruction instead of a call into the runtime (the same bits
/// either way: a fused multiply-add is rounded once, by whichever means), and on
/// `avx512` with AVX-512 too, so that loops vectorize 16 lanes wide. On `reference`
/// and `scalar`, `w.run()` as compiled for the baseline.
pub(crate) fn with_fma<W: FmaWork>(path: KernelPath, w: W) -> W::Out {
    #[cfg(target_arch = "x86_64")]
    if path == KernelPath::Avx512
        && let Some(k) = x86_fma::Avx512Fma::new()
    {
        return k.run(w);
    }
    #[cfg(target_arch = "x86_64")]
    if matches!(path, KernelPath::Avx2 | KernelPath::Avx512)
        && let Some(fma) = x86_fma::Fma::new()
    {
        return fma.run(w);
    }
    let _ = path;
    w.run()
}

/// The environment variable that forces a kernel path.
pub const KERNELS_ENV: &str = "DEED_ENGINE_KERNELS";

/// One implementation of the engine's matrix kernels. All give the same bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KernelPath {
    /// The plain scalar reference kernels (the specification).
    Reference,
    /// The blocked driver with a portable scalar tile.
    Scalar,
    /// The blocked driver with AVX2+FMA tiles (x86-64).
    Avx2,
    /// The blocked driver with AVX-512F tiles (x86-64).
    Avx512,
}

impl KernelPath {
    /// Every path, available or not, narrowest first.
    pub const ALL: [KernelPath; 4] = [KernelPath::Reference, KernelPath::Scalar, KernelPath::Avx2, KernelPath::Avx512];

    /// The name used by `DEED_ENGINE_KERNELS`.
    pub fn name(self) -> &'static str {
        match self {
            KernelPath::Reference => "reference",
            KernelPath::Scalar => "scalar",
            KernelPath::Avx2 => "avx2",
            KernelPath::Avx512 => "avx512",
        }
    }

    /// The path of that name.
    pub fn parse(name: &str) -> Option<KernelPath> {
        KernelPath::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            KernelPath::Reference | KernelPath::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => x86::Avx2::<6, 2>::new().is_some(),
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx512 => x86::Avx512::<8, 2>::new().is_some(),
            #[cfg(not(target_arch = "x86_64"))]
            KernelPath::Avx2 | KernelPath::Avx512 => false,
        }
    }

    /// The paths this CPU can run, narrowest first.
    pub fn available() -> Vec<KernelPath> {
        KernelPath::ALL.into_iter().filter(|p| p.is_available()).collect()
    }

    /// The widest path this CPU can run.
    pub fn best() -> KernelPath {
        *KernelPath::available().last().expect("reference is always available")
    }

    /// The path named by `value` (the value of `DEED_ENGINE_KERNELS`): unset, empty or
    /// `auto` is [`KernelPath::best`]; a path the CPU lacks or an unknown name is an error.
    pub fn from_setting(value: Option<&str>) -> Result<KernelPath, String> {
        let names = || KernelPath::available().iter().map(|p| p.name()).collect::<Vec<_>>().join(", ");
        match value.map(str::trim) {
            None | Some("" | "auto") => Ok(KernelPath::best()),
            Some(v) => match KernelPath::parse(v) {
                Some(p) if p.is_available() => Ok(p),
                Some(p) => {
                    Err(format!("{KERNELS_ENV}={} but this CPU cannot run it; available: {}", p.name(), names()))
                }
                None => Err(format!("{KERNELS_ENV}={v} is not a kernel path; available: auto, {}", names())),
            },
        }
    }

    /// The path the environment asks for, read once per process.
    pub fn from_env() -> Result<KernelPath, String> {
        static CHOSEN: OnceLock<Result<KernelPath, String>> = OnceLock::new();
        CHOSEN.get_or_init(|| KernelPath::from_setting(std::env::var(KERNELS_ENV).ok().as_deref())).clone()
    }
}

/// Whether `v` holds a NaN, on the widest vectors this CPU has (an exact answer, so any
/// path may compute it: the trace checks each piece it hashes, see `trace`).
pub(crate) fn has_nan(v: &[f32]) -> bool {
    struct HasNan<'a>(&'a [f32]);
    impl FmaWork for HasNan<'_> {
        type Out = bool;
        #[inline(always)]
        fn run(self) -> bool {
            // A fold rather than `any`: no early exit, so it vectorizes.
            self.0.iter().fold(false, |acc, x| acc | x.is_nan())
        }
    }
    static BEST: OnceLock<KernelPath> = OnceLock::new();
    with_fma(*BEST.get_or_init(KernelPath::best), HasNan(v))
}

/// Replaces every NaN by the canonical quiet NaN `0x7fc0_0000`.
///
/// Rust (like LLVM and the hardware) leaves the sign and payload of a NaN result
/// unspecified: they depend on which operand the instruction the compiler picked treats as
/// first. MatMul, Gemm and Conv therefore store every NaN result canonically, on every path.
pub(crate) fn canonical_nan(v: &mut [f32]) {
    // An unconditional store of a select vectorizes; a conditional store does not.
    v.iter_mut().for_each(|x| *x = canonical(*x));
}

/// `x`, or the canonical NaN if `x` is a NaN.
#[inline(always)]
pub(crate) fn canonical(x: f32) -> f32 {
    deed_types::tensor::canonical_f32(x)
}

/// The bits of the quiet NaN every NaN result of MatMul, Gemm and Conv is stored as (the
/// one the tensor encoding writes every NaN as).
pub const CANONICAL_NAN: u32 = deed_types::tensor::CANONICAL_NAN_F32;

/// A strided view of a matrix: element `(r, c)` is `data[r * rs + c * cs]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// The view starting at row `r`, column `c`.
    fn offset(&self, r: usize, c: usize) -> Mat<'a> {
        Mat { data: &self.data[r * self.rs + c * self.cs..], ..*self }
    }
}

/// Columns per group of a B operand as tiles read it: column `j` of a tile's B is at
/// `(j / GROUP) * pstride + j % GROUP` (plus `k * ldb` for row `k`). Row-major B in place
/// has `pstride = GROUP` and its row stride as `ldb`, and so has a [`PackedB`] chunk (its
/// width as `ldb`); panels packed per call ([`pack_panels`]) have
/// `pstride = panel_stride(kc)`, `ldb = GROUP`.
pub(crate) const GROUP: usize = 16;

/// The distance between the starts of two packed `kc`-row panels: one row of padding
/// keeps the panels a tile reads side by side off the same L1 sets (at `kc * GROUP`
/// alone, 16 KiB apart for a full block, they all alias).
#[inline]
pub(crate) fn panel_stride(kc: usize) -> usize {
    (kc + 1) * GROUP
}

/// The offset of element `(k, j)` of a tile's B (see [`GROUP`]).
#[inline(always)]
pub(crate) fn b_at(k: usize, j: usize, ldb: usize, pstride: usize) -> usize {
    (j / GROUP) * pstride + j % GROUP + k * ldb
}

/// A micro-kernel: adds one K block of dot products into an `mr × ncols` tile of C.
pub(crate) trait Tile: Sync {
    /// Most rows per tile.
    const MR: usize;
    /// Columns per tile (a multiple of [`GROUP`]).
    const NR: usize;
    /// For `r < mr`, `j < ncols`: `acc = 0.0; for k < kc { acc = fma(a(r, k),
    /// b[b_at(k, j, ldb, pstride)], acc) }; c[r*ldc + j] = old + acc`, where `old` is
    /// `c[r*ldc + j]`, or `+0.0` for the `first` K block (C is then not read: the
    /// reference's sum starts at `+0.0`, and `+0.0 + acc` is what it adds first).
    #[allow(clippy::too_many_arguments)]
    fn tile(
        &self,
        mr: usize,
        kc: usize,
        a: Mat<'_>,
        b: &[f32],
        ldb: usize,
        pstride: usize,
        c: &mut [f32],
        ldc: usize,
        ncols: usize,
        first: bool,
    );

    /// Applies `epi` to rows `r0..r0 + rows` of `c` (`ldc` apart), columns `..ncols` (see
    /// [`Epilogue::apply`]); a SIMD tile runs it compiled for its own instruction set.
    #[inline]
    fn finish(&self, epi: Epilogue<'_>, r0: usize, rows: usize, c: &mut [f32], ldc: usize, ncols: usize) {
        epi.apply(r0, rows, c, ldc, ncols)
    }
}

/// The bounds every tile relies on; a violation is a bug in the driver.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) fn check_tile(
    mr_max: usize,
    nr: usize,
    mr: usize,
    kc: usize,
    a: Mat<'_>,
    b: &[f32],
    ldb: usize,
    pstride: usize,
    c: &[f32],
    ldc: usize,
    ncols: usize,
) {
    assert!((1..=mr_max).contains(&mr) && (1..=nr).contains(&ncols) && (1..=DOT_BLOCK).contains(&kc), "tile shape");
    assert!(a.data.len() > (mr - 1) * a.rs + (kc - 1) * a.cs, "tile a bounds");
    // Every group's last row ends in bounds (groups ascend: pstride >= GROUP).
    assert!(pstride >= GROUP && b.len() > b_at(kc - 1, ncols - 1, ldb, pstride), "tile b bounds");
    assert!(ldc >= ncols && c.len() >= (mr - 1) * ldc + ncols, "tile c bounds");
}

/// The portable tile: `MR` rows × `NR` columns with `f32::mul_add`.
#[derive(Clone, Copy, Debug)]
struct ScalarTile<const MR: usize, const NR: usize>;

impl<const MR: usize, const NR: usize> Tile for ScalarTile<MR, NR> {
    const MR: usize = MR;
    const NR: usize = NR;
    fn tile(
        &self,
        mr: usize,
        kc: usize,
        a: Mat<'_>,
        b: &[f32],
        ldb: usize,
        pstride: usize,
        c: &mut [f32],
        ldc: usize,
        ncols: usize,
        first: bool,
    ) {
        check_tile(MR, NR, mr, kc, a, b, ldb, pstride, c, ldc, ncols);
        let mut acc = [[0.0f32; NR]; MR];
        for k in 0..kc {
            for (r, acc_r) in acc.iter_mut().enumerate().take(mr) {
                let av = a.data[r * a.rs + k * a.cs];
                for (g, xs) in acc_r[..ncols].chunks_mut(GROUP).enumerate() {
                    let bk = &b[g * pstride + k * ldb..][..xs.len()];
                    for (x, &bv) in xs.iter_mut().zip(bk) {
                        *x = av.mul_add(bv, *x);
                    }
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate().take(mr) {
            for (y, &x) in c[r * ldc..r * ldc + ncols].iter_mut().zip(acc_r) {
                *y = if first { 0.0 + x } else { *y + x };
            }
        }
    }
}

/// Columns of B packed per cache block (a packed K block of them stays in L2).
const NC: usize = 512;
/// Rows of A per cache block (a multiple of every tile's row count): a packed K block of
/// them (240 KiB) stays in L2 while the column panels of B pass through L1.
const MC: usize = 240;
/// Row stride (floats) of a row-major B from which it is packed when several row tiles
/// read it: rows a page or more apart share L1 sets and TLB entries.
const PACK_B_STRIDE: usize = 1024;
/// Column panels (of a tile's width) from which A is packed.
const PACK_A_PANELS: usize = 16;
/// Multiply-adds below which a product stays on the calling thread.
const PAR_MIN_MACS: usize = 1 << 17;

/// `out[i*ldc + j] = dot(A[i, ..k], B[..k, j])` for `i < m`, `j < n`, with the engine's dot
/// product, on `threads` threads (results do not depend on it). `path` must be available
/// and not [`KernelPath::Reference`] (the reference lives with each operator).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm(
    path: KernelPath,
    threads: usize,
    m: usize,
    n: usize,
    k: usize,
    a: Mat<'_>,
    b: Mat<'_>,
    out: &mut [f32],
    ldc: usize,
    epi: Epilogue<'_>,
) {
    gemm_with(path, threads, PAR_MIN_MACS, m, n, k, a, BOp::Mat(b), out, ldc, epi)
}

/// [`gemm`] with a B packed beforehand (`n` and `k` are its own).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_packed(
    path: KernelPath,
    threads: usize,
    m: usize,
    a: Mat<'_>,
    b: &PackedB,
    out: &mut [f32],
    ldc: usize,
    epi: Epilogue<'_>,
) {
    gemm_with(path, threads, PAR_MIN_MACS, m, b.n, b.k, a, BOp::Packed(b, 0), out, ldc, epi)
}

/// What the driver does to each output element once its last K block is in, while the
/// tile is still in cache: the operations a separate pass over the output would do, in
/// the same order, so the same bits.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Epilogue<'a> {
    /// Nothing (Gemm finishes its output with its own epilogue).
    None,
    /// NaN results become the canonical NaN (MatMul).
    Canonical,
    /// `canonical(y + bias[row])`: Conv's bias (one rounded add) and the canonical NaN.
    RowBias(&'a [f32]),
}

impl<'a> Epilogue<'a> {
    /// The epilogue of the rows from `r0` on.
    fn rows_from(self, r0: usize) -> Epilogue<'a> {
        match self {
            Epilogue::RowBias(b) => Epilogue::RowBias(&b[r0..]),
            e => e,
        }
    }

    /// Applies it to rows `r0..r0 + rows` of `c` (`ldc` apart), columns `..ncols`.
    #[inline(always)]
    pub(crate) fn apply(self, r0: usize, rows: usize, c: &mut [f32], ldc: usize, ncols: usize) {
        let rows = (0..rows).map(|r| (r, r * ldc));
        match self {
            Epilogue::None => {}
            Epilogue::Canonical => {
                for (_, at) in rows {
                    c[at..at + ncols].iter_mut().for_each(|y| *y = canonical(*y));
                }
            }
            Epilogue::RowBias(b) => {
                for (r, at) in rows {
                    let b = b[r0 + r];
                    c[at..at + ncols].iter_mut().for_each(|y| *y = canonical(*y + b));
                }
            }
        }
    }
}

/// A B operand whose rows are made on demand (Conv's im2col): the driver asks for the
/// part of the rows it is about to pack, so the matrix itself never exists.
pub(crate) trait RowSource: Sync {
    /// Writes `B[r, c0..c0 + out.len()]` into `out`.
    fn row(&self, r: usize, c0: usize, out: &mut [f32]);
}

/// [`gemm`] with B made row by row by `b` (`k × n`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_rows(
    path: KernelPath,
    threads: usize,
    m: usize,
    n: usize,
    k: usize,
    a: Mat<'_>,
    b: &dyn RowSource,
    out: &mut [f32],
    ldc: usize,
    epi: Epilogue<'_>,
) {
    gemm_with(path, threads, PAR_MIN_MACS, m, n, k, a, BOp::Rows(b, 0), out, ldc, epi)
}

/// Row counts up to which the driver uses its wide, short tiles (a matrix-vector
/// product, bound by streaming B once).
pub(crate) const NARROW_ROWS: usize = 2;

/// Columns per chunk of a streamed [`PackedB`] that has more than one: the width of the
/// matrix-vector tile, so that it reads whole chunks.
const CHUNK_STREAMED: usize = 128;

/// Columns per chunk of any other [`PackedB`] that has more than one: the width of the
/// widest many-row tile (64 against 128: mlp_b64 5% faster at one thread, BERT-base the
/// same).
const CHUNK: usize = 64;

/// A constant `[K, N]` B packed once (at load) into the layout the tiles read, so that a
/// product neither packs it again nor reads it across rows. K block `kb` (a multiple of
/// [`DOT_BLOCK`], `kc` long) starts at `kb * chunks * width`; within it, the `width`
/// columns from `c * width` are a `kc × width` row-major block at `c * kc * width`, the
/// last one zero-padded. `width` is [`CHUNK_STREAMED`] for a matrix that a matrix-vector
/// product may stream, else [`CHUNK`] — or N rounded up to [`GROUP`] if that is less (one
/// chunk: a narrow B is not padded to a whole chunk). A tile never straddles two chunks:
/// it starts at a multiple of its `NR`, which divides the width of a B of several chunks.
///
/// A matrix-vector product, whose tiles are a whole chunk wide, so streams all of B front
/// to back in one sequential run: about 20% more bandwidth from L3 than the four
/// interleaved [`GROUP`]-wide panels it read before (a C microbenchmark of both layouts:
/// 102 against 80 GB/s; mlp_b1's 2048 × 2048 product 0.234 → 0.195 ms). A tile of many
/// rows reads its whole chunk per K block as one contiguous block. Values are moved,
/// never combined: products with it give the same bits as with the original B.
#[derive(Clone, PartialEq)]
pub(crate) struct PackedB {
    k: usize,
    n: usize,
    /// Column chunks per K block.
    chunks: usize,
    /// Columns per chunk.
    width: usize,
    /// For a streamed matrix, 2 MiB-aligned and on huge pages where granted (see
    /// [`huge`]).
    data: HugeBuf,
}

impl PackedB {
    /// Packs the `k × n` matrix `b`. `streamed` says that a product of at most
    /// [`NARROW_ROWS`] rows may read it, which streams it once per run: it then goes on
    /// huge pages (see [`huge`]).
    pub(crate) fn new(b: Mat<'_>, k: usize, n: usize, streamed: bool) -> PackedB {
        let (chunks, width) = Self::chunks(n, streamed);
        let mut p = PackedB { k, n, chunks, width, data: HugeBuf::zeroed(k * chunks * width, streamed) };
        for kb in (0..k).step_by(DOT_BLOCK) {
            let kc = DOT_BLOCK.min(k - kb);
            let at = p.block(kb);
            let block = &mut p.data[at..][..chunks * kc * width];
            for (c, chunk) in block.chunks_exact_mut(kc * width).enumerate() {
                let (j0, w) = (c * width, width.min(n - c * width));
                if b.cs == 1 {
                    // Row-major source: each row's run of the chunk is contiguous.
                    for (kk, row) in chunk.chunks_exact_mut(width).enumerate() {
                        let s = (kb + kk) * b.rs + j0;
                        row[..w].copy_from_slice(&b.data[s..s + w]);
                    }
                } else {
                    // Column-major source (a transposed B, as `transB` weights are stored):
                    // copied in 16 × 16 blocks, so that the reads and the writes of a block
                    // each stay within 16 cache lines (column by column, every write went
                    // to another line: 1.7 GB/s, a quarter of mlp_b1's load).
                    const T: usize = 16;
                    for jt in (0..w).step_by(T) {
                        for kt in (0..kc).step_by(T) {
                            let kn = T.min(kc - kt);
                            for j in jt..(jt + T).min(w) {
                                let col = (j0 + j) * b.cs + (kb + kt) * b.rs;
                                for kk in 0..kn {
                                    chunk[(kt + kk) * width + j] = b.data[col + kk * b.rs];
                                }
                            }
                        }
                    }
                }
            }
        }
        p
    }

    /// Chunks and columns per chunk of a packed matrix of `n` columns.
    fn chunks(n: usize, streamed: bool) -> (usize, usize) {
        let width = (if streamed { CHUNK_STREAMED } else { CHUNK }).min(n.next_multiple_of(GROUP)).max(GROUP);
        (n.div_ceil(width), width)
    }

    /// How many times the matrix's own size its packed copy takes (the last chunk is
    /// zero-padded: up to 16 times for a single column).
    pub(crate) fn growth(n: usize, streamed: bool) -> f64 {
        let (chunks, width) = Self::chunks(n, streamed);
        (chunks * width) as f64 / n.max(1) as f64
    }

    /// Where K block `kb` starts.
    fn block(&self, kb: usize) -> usize {
        kb * self.chunks * self.width
    }

    /// The tile operand `(b, ldb, pstride)` (see [`GROUP`]) for the columns from `col` (a
    /// multiple of the tile's `NR`) of K block `kb`, `kc` long.
    fn tile_b(&self, kb: usize, kc: usize, col: usize) -> (&[f32], usize, usize) {
        let w = self.width;
        (&self.data[self.block(kb) + (col / w) * kc * w + col % w..], w, GROUP)
    }

    /// Rows (K) and columns (N) of the matrix.
    pub(crate) fn dims(&self) -> (usize, usize) {
        (self.k, self.n)
    }

    /// The matrix transposed, `N × K` row-major (what the reference kernels read).
    pub(crate) fn transposed(&self) -> Vec<f32> {
        let (k, n) = (self.k, self.n);
        let mut out = vec![0.0f32; n * k];
        for kb in (0..k).step_by(DOT_BLOCK) {
            let kc = DOT_BLOCK.min(k - kb);
            for j in 0..n {
                let (b, ldb, _) = self.tile_b(kb, kc, j);
                for kk in 0..kc {
                    out[j * k + kb + kk] = b[kk * ldb];
                }
            }
        }
        out
    }
}

impl std::fmt::Debug for PackedB {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackedB({} × {})", self.k, self.n)
    }
}

/// The B operand of the driver.
#[derive(Clone, Copy)]
enum BOp<'a> {
    /// A strided matrix (packed per call when that pays).
    Mat(Mat<'a>),
    /// Columns from the given one (a multiple of [`GROUP`]) of a packed matrix.
    Packed(&'a PackedB, usize),
    /// Columns from the given one of a matrix made row by row (always packed).
    Rows(&'a dyn RowSource, usize),
}

impl std::fmt::Debug for BOp<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BOp::Mat(m) => write!(f, "Mat(rs {}, cs {})", m.rs, m.cs),
            BOp::Packed(p, c) => write!(f, "Packed({p:?}, from column {c})"),
            BOp::Rows(_, c) => write!(f, "Rows(from column {c})"),
        }
    }
}

impl<'a> BOp<'a> {
    /// The columns from `c0` on (`c0` a multiple of every tile's `NR`).
    fn cols_from(self, c0: usize) -> BOp<'a> {
        match self {
            BOp::Mat(b) => BOp::Mat(b.offset(0, c0)),
            BOp::Packed(p, c) => BOp::Packed(p, c + c0),
            BOp::Rows(r, c) => BOp::Rows(r, c + c0),
        }
    }
}

/// [`gemm`] with the threading threshold as a parameter (tests thread tiny shapes).
#[allow(clippy::too_many_arguments)]
fn gemm_with(
    path: KernelPath,
    threads: usize,
    par_min_macs: usize,
    m: usize,
    n: usize,
    k: usize,
    a: Mat<'_>,
    b: BOp<'_>,
    out: &mut [f32],
    ldc: usize,
    epi: Epilogue<'_>,
) {
    let macs = m.saturating_mul(n).saturating_mul(k);
    let threads = if macs < par_min_macs { 1 } else { threads.max(1) };
    if m == 0 || n == 0 {
        return;
    }
    assert!(ldc >= n && out.len() >= (m - 1) * ldc + n, "gemm output bounds");
    if k == 0 {
        // Empty dot products are +0.0 (and A and B may be empty slices).
        for i in 0..m {
            out[i * ldc..i * ldc + n].fill(0.0);
        }
        epi.apply(0, m, out, ldc, n);
        return;
    }
    match path {
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx512 => {
            if m <= NARROW_ROWS && matches!(b, BOp::Packed(p, _) if p.width == CHUNK_STREAMED) {
                // A whole chunk per tile, so that the product streams B front to back (see
                // PackedB).
                split(&x86::Avx512::<2, 8>::new().expect("path checked"), threads, m, n, k, a, b, out, ldc, epi)
            } else if m <= NARROW_ROWS {
                // 4 column panels (of 16) side by side: measured 2-4% faster than 8 on
                // mlp_b1 when it read B from such panels.
                split(&x86::Avx512::<2, 4>::new().expect("path checked"), threads, m, n, k, a, b, out, ldc, epi)
            } else {
                // Wide tiles (measured about 8% faster on MatMul and 1% on Conv), unless N is
                // so narrow that rounding it up to 64 columns pads it by more than a
                // sixteenth over the tall tiles' 32. The bits do not depend on the choice.
                if n.next_multiple_of(64) <= n.next_multiple_of(32) + n / 16 {
                    split(&x86::Avx512::<6, 4>::new().expect("path checked"), threads, m, n, k, a, b, out, ldc, epi)
                } else {
                    split(&x86::Avx512::<12, 2>::new().expect("path checked"), threads, m, n, k, a, b, out, ldc, epi)
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        KernelPath::Avx2 => {
            if m <= NARROW_ROWS {
                split(&x86::Avx2::<2, 8>::new().expect("path checked"), threads, m, n, k, a, b, out, ldc, epi)
            } else {
                split(&x86::Avx2::<6, 2>::new().expect("path checked"), threads, m, n, k, a, b, out, ldc, epi)
            }
        }
        KernelPath::Scalar => split(&ScalarTile::<4, 16>, threads, m, n, k, a, b, out, ldc, epi),
        p => unreachable!("kernel path {p:?} is not a blocked path on this CPU"),
    }
}

/// Splits the output over threads: row ranges when there are enough rows and at least as
/// many rows as columns, otherwise column ranges (each thread fills a private buffer
/// that is copied back).
#[allow(clippy::too_many_arguments)]
fn split<T: Tile>(
    t: &T,
    threads: usize,
    m: usize,
    n: usize,
    k: usize,
    a: Mat<'_>,
    b: BOp<'_>,
    out: &mut [f32],
    ldc: usize,
    epi: Epilogue<'_>,
) {
    if threads == 1 {
        return drive(t, m, n, k, a, b, out, ldc, epi);
    }
    // Each thread reads all of the operand the split does not divide: a row split reads
    // all of B (k × n) per thread, a column split all of A (m × k). Split the larger one.
    let by_rows = m >= threads * T::MR * 2 && (m >= n || n < threads * T::NR * 2);
    if by_rows {
        let per = m.div_ceil(threads).next_multiple_of(T::MR);
        let mut parts = Vec::with_capacity(threads);
        let mut rest = out;
        let mut r0 = 0;
        while r0 < m {
            let rows = per.min(m - r0);
            let take = if r0 + rows == m { rest.len() } else { rows * ldc };
            let (chunk, tail) = std::mem::take(&mut rest).split_at_mut(take);
            rest = tail;
            parts.push((chunk, a.offset(r0, 0), rows, epi.rows_from(r0)));
            r0 += rows;
        }
        crate::pool::map(parts, |(chunk, ar, rows, epi)| drive(t, rows, n, k, ar, b, chunk, ldc, epi));
    } else {
        let per = n.div_ceil(threads).next_multiple_of(T::NR);
        let ranges: Vec<(usize, usize)> = (0..n).step_by(per).map(|c0| (c0, (c0 + per).min(n))).collect();
        // Each part's pieces of the output rows (disjoint), which the thread that computed
        // the part fills from its private buffer while that is still in its cache.
        let mut pieces: Vec<Vec<&mut [f32]>> = ranges.iter().map(|_| Vec::with_capacity(m)).collect();
        for row in out.chunks_mut(ldc).take(m) {
            let mut rest = &mut row[..n];
            for (piece, &(c0, c1)) in pieces.iter_mut().zip(&ranges) {
                let (mine, tail) = std::mem::take(&mut rest).split_at_mut(c1 - c0);
                piece.push(mine);
                rest = tail;
            }
        }
        crate::pool::map(ranges.into_iter().zip(pieces).collect(), |((c0, c1), rows)| {
            let w = c1 - c0;
            COLUMNS.with_borrow_mut(|buf| {
                // Every element is written by the product (no stale value survives).
                if buf.len() < m * w {
                    buf.resize(m * w, 0.0);
                }
                let buf = &mut buf[..m * w];
                drive(t, m, w, k, a, b.cols_from(c0), buf, w, epi);
                for (dst, src) in rows.into_iter().zip(buf.chunks_exact(w)) {
                    dst.copy_from_slice(src);
                }
            });
        });
    }
}

thread_local! {
    /// Per-thread output buffer of a column part (see [`split`]), reused across calls.
    static COLUMNS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Per-thread packing buffers (B panels, A panels, made rows), reused across calls so that a
    /// product does not allocate and fault in fresh pages every time.
    static PACK: std::cell::RefCell<(Vec<f32>, Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// The single-threaded blocked product (see the module docs for why it keeps the order).
#[allow(clippy::too_many_arguments)]
fn drive<T: Tile>(
    t: &T,
    m: usize,
    n: usize,
    k: usize,
    a: Mat<'_>,
    b: BOp<'_>,
    out: &mut [f32],
    ldc: usize,
    epi: Epilogue<'_>,
) {
    PACK.with(|p| match p.try_borrow_mut() {
        Ok(mut bufs) => {
            let (bp, ap, rp) = &mut *bufs;
            drive_in(t, m, n, k, a, b, out, ldc, epi, bp, ap, rp)
        }
        // Only reachable if a tile re-entered the driver; fresh buffers are as good.
        Err(_) => drive_in(t, m, n, k, a, b, out, ldc, epi, &mut Vec::new(), &mut Vec::new(), &mut Vec::new()),
    })
}

/// [`drive`] with the packing buffers given.
#[allow(clippy::too_many_arguments)]
fn drive_in<T: Tile>(
    t: &T,
    m: usize,
    n: usize,
    k: usize,
    a: Mat<'_>,
    b: BOp<'_>,
    out: &mut [f32],
    ldc: usize,
    epi: Epilogue<'_>,
    bpack: &mut Vec<f32>,
    apack: &mut Vec<f32>,
    rows_buf: &mut Vec<f32>,
) {
    if k == 0 {
        for i in 0..m {
            out[i * ldc..i * ldc + n].fill(0.0);
        }
        epi.apply(0, m, out, ldc, n);
        return;
    }
    // No zero fill: every tile of C is written by its first K block (`first`), which
    // does not read C.
    let (mr_max, nr) = (T::MR, T::NR);
    if let BOp::Packed(p, _) = b {
        assert!(p.chunks == 1 || p.width.is_multiple_of(nr), "a tile never straddles two chunks of a PackedB");
    }
    // A strided B is read in place only when its columns are contiguous, its rows do not
    // overlap (a [N, 1] matrix seen as [1, N] has column stride 1 and row stride 1) and
    // either a panel is used by one row tile only or its rows are close (Conv's im2col
    // chunks); otherwise it is packed into GROUP-wide, K-block-long panels, which stay in
    // L1 while the row tiles of A stream past (in place, the rows of a K-block panel are a
    // whole row of B apart and fight over a few cache sets). A PackedB is read as it is.
    let pack_b = match b {
        BOp::Mat(b) => !(b.cs == 1 && (k == 1 || b.rs >= n)) || (m > mr_max && b.rs >= PACK_B_STRIDE),
        BOp::Packed(..) => false,
        BOp::Rows(..) => true,
    };
    // A is packed (per K block: mr-row panels, k-major) when its tiles are used by many
    // column panels (packing costs about as much as 1/(2 nr) of a column panel's work per
    // element: it only pays back over many panels; Conv's im2col chunks of 64 columns
    // would pack the whole weight matrix per chunk), and it has more than the one or two
    // rows a matrix-vector product streams B past.
    let pack_a = n >= PACK_A_PANELS * nr && m > NARROW_ROWS;
    let nc_max = if pack_b { NC.next_multiple_of(nr) } else { n };
    if pack_b {
        let len = nc_max.min(n.next_multiple_of(nr)) / GROUP * panel_stride(DOT_BLOCK);
        if bpack.len() < len {
            bpack.resize(len, 0.0);
        }
    }
    // Packed A: K block `kb` (a multiple of DOT_BLOCK) starts at `kb * m_pad`, its row
    // panel of rows `i..i + mr_max` at `kb * m_pad + i * kc`. Packed once for all of N.
    let m_pad = m.next_multiple_of(mr_max);
    if pack_a {
        if apack.len() < m_pad * k {
            apack.resize(m_pad * k, 0.0);
        }
        for kb in (0..k).step_by(DOT_BLOCK) {
            let kc = DOT_BLOCK.min(k - kb);
            pack_rows(a.offset(0, kb), m, kc, mr_max, &mut apack[kb * m_pad..]);
        }
    }
    for jc in (0..n).step_by(nc_max) {
        let nc = nc_max.min(n - jc);
        for kb in (0..k).step_by(DOT_BLOCK) {
            let kc = DOT_BLOCK.min(k - kb);
            match b {
                BOp::Mat(b) if pack_b => pack_panels(b, kb, kc, jc, nc, bpack),
                BOp::Rows(src, c0) => pack_made_rows(src, c0 + jc, kb, kc, nc, bpack, rows_buf),
                _ => {}
            }
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                for jr in (0..nc).step_by(nr) {
                    let ncols = nr.min(nc - jr);
                    // (tile's B, ldb, pstride); see GROUP.
                    let (bs, ldb, pstride) = match b {
                        _ if pack_b => (&bpack[(jr / GROUP) * panel_stride(kc)..], GROUP, panel_stride(kc)),
                        BOp::Mat(b) => (&b.data[kb * b.rs + jc + jr..], b.rs, GROUP),
                        BOp::Rows(..) => unreachable!("made rows are always packed"),
                        BOp::Packed(p, c0) => p.tile_b(kb, kc, c0 + jc + jr),
                    };
                    for ir in (0..mc).step_by(mr_max) {
                        let mr = mr_max.min(mc - ir);
                        let c = &mut out[(ic + ir) * ldc + jc + jr..];
                        let at = if pack_a {
                            Mat { data: &apack[kb * m_pad + (ic + ir) * kc..], rs: 1, cs: mr_max }
                        } else {
                            a.offset(ic + ir, kb)
                        };
                        t.tile(mr, kc, at, bs, ldb, pstride, c, ldc, ncols, kb == 0);
                    }
                    if kb + kc == k {
                        // These mc × ncols elements are final, and still in cache.
                        t.finish(epi, ic, mc, &mut out[ic * ldc + jc + jr..], ldc, ncols);
                    }
                }
            }
        }
    }
}

/// Packs `A[..mc, ..kc]` into `mr`-row panels: panel `p` holds rows `p*mr..` k-major,
/// element `(r, k)` at `p*mr*kc + k*mr + r` (the last panel's missing rows are left as
/// they are and never read).
fn pack_rows(a: Mat<'_>, mc: usize, kc: usize, mr: usize, dst: &mut [f32]) {
    for (pi, r0) in (0..mc).step_by(mr).enumerate() {
        let h = mr.min(mc - r0);
        let panel = &mut dst[pi * mr * kc..(pi + 1) * mr * kc];
        // Written front to back, read from h streams.
        for (kk, col) in panel.chunks_exact_mut(mr).enumerate() {
            for (r, x) in col[..h].iter_mut().enumerate() {
                *x = a.data[(r0 + r) * a.rs + kk * a.cs];
            }
        }
    }
}

/// Rows [`pack_made_rows`] makes at a time before dealing them out to the panels.
const MADE_ROWS: usize = 16;

/// [`pack_panels`] for a made B: rows `kb..kb + kc`, columns `c0..c0 + nc` of `src`, made
/// [`MADE_ROWS`] at a time into `buf` (which stays in L1) and dealt out as one run of
/// rows per panel.
fn pack_made_rows(
    src: &dyn RowSource,
    c0: usize,
    kb: usize,
    kc: usize,
    nc: usize,
    dst: &mut [f32],
    buf: &mut Vec<f32>,
) {
    let panels = nc.div_ceil(GROUP);
    if buf.len() < MADE_ROWS * nc {
        buf.resize(MADE_ROWS * nc, 0.0);
    }
    for k0 in (0..kc).step_by(MADE_ROWS) {
        let h = MADE_ROWS.min(kc - k0);
        for (i, row) in buf.chunks_exact_mut(nc).take(h).enumerate() {
            src.row(kb + k0 + i, c0, row);
        }
        for pi in 0..panels {
            let w = GROUP.min(nc - pi * GROUP);
            let run = &mut dst[pi * panel_stride(kc) + k0 * GROUP..][..h * GROUP];
            let (groups, _) = run.as_chunks_mut::<GROUP>();
            for (d, row) in groups.iter_mut().zip(buf.chunks_exact(nc)) {
                if w == GROUP {
                    // A fixed-size copy: moves, not a call into memcpy per 64 bytes.
                    *d = row[pi * GROUP..][..GROUP].try_into().expect("GROUP floats");
                } else {
                    d[..w].copy_from_slice(&row[pi * GROUP..pi * GROUP + w]);
                    d[w..].fill(0.0);
                }
            }
        }
    }
}

/// Packs `B[kb..kb+kc, jc..jc+nc]` into [`GROUP`]-wide panels, each `kc × GROUP`
/// row-major at `panel_stride(kc)` from the previous one, the last one zero-padded.
fn pack_panels(b: Mat<'_>, kb: usize, kc: usize, jc: usize, nc: usize, dst: &mut [f32]) {
    let panels = nc.div_ceil(GROUP);
    if b.cs == 1 {
        // Row-major source: read each row of the block once, front to back (the hardware
        // prefetcher follows it), and deal it out to the panels.
        for kk in 0..kc {
            let s = (kb + kk) * b.rs + jc;
            let src = &b.data[s..s + nc];
            for pi in 0..panels {
                let w = GROUP.min(nc - pi * GROUP);
                let row = &mut dst[pi * panel_stride(kc) + kk * GROUP..][..GROUP];
                if w == GROUP {
                    row.copy_from_slice(&src[pi * GROUP..][..GROUP]);
                } else {
                    row[..w].copy_from_slice(&src[pi * GROUP..pi * GROUP + w]);
                    row[w..].fill(0.0);
                }
            }
        }
        return;
    }
    // Column-major source (a transposed B): read each column contiguously.
    for pi in 0..panels {
        let w = GROUP.min(nc - pi * GROUP);
        let panel = &mut dst[pi * panel_stride(kc)..][..kc * GROUP];
        if w < GROUP {
            panel.fill(0.0);
        }
        for j in 0..w {
            let col = (jc + pi * GROUP + j) * b.cs + kb * b.rs;
            for kk in 0..kc {
                panel[kk * GROUP + j] = b.data[col + kk * b.rs];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::linalg::dot;
    use proptest::prelude::*;

    /// The spec's product, element by element.
    fn reference(m: usize, n: usize, k: usize, a: Mat<'_>, b: Mat<'_>) -> Vec<f32> {
        let mut out = Vec::with_capacity(m * n);
        for i in 0..m {
            let row: Vec<f32> = (0..k).map(|q| a.data[i * a.rs + q * a.cs]).collect();
            for j in 0..n {
                let col: Vec<f32> = (0..k).map(|q| b.data[q * b.rs + j * b.cs]).collect();
                out.push(dot(&row, &col));
            }
        }
        out
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    const SPECIAL: [f32; 8] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0, 1e-40, -3e-39, f32::MAX];

    fn values(seed: u64, len: usize, special: bool) -> Vec<f32> {
        let mut s = seed | 1;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let r = (s >> 33) as u32;
                if special && r.is_multiple_of(61) {
                    SPECIAL[(r / 61) as usize % SPECIAL.len()]
                } else {
                    (r % 2000) as f32 / 997.0 - 1.0
                }
            })
            .collect()
    }

    /// A B operand made row by row from a matrix.
    struct MatRows<'a>(Mat<'a>);

    impl RowSource for MatRows<'_> {
        fn row(&self, r: usize, c0: usize, out: &mut [f32]) {
            for (j, y) in out.iter_mut().enumerate() {
                *y = self.0.data[r * self.0.rs + (c0 + j) * self.0.cs];
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn check(m: usize, n: usize, k: usize, ta: bool, tb: bool, ldc_extra: usize, seed: u64, special: bool) {
        let av = values(seed, m * k, special);
        let bv = values(seed ^ 0x9e37_79b9, k * n, special);
        let a = if ta { Mat { data: &av, rs: 1, cs: m } } else { Mat { data: &av, rs: k, cs: 1 } };
        let b = if tb { Mat { data: &bv, rs: 1, cs: k } } else { Mat { data: &bv, rs: n, cs: 1 } };
        let dots = reference(m, n, k, a, b);
        let mut want = dots.clone();
        canonical_nan(&mut want);
        let want = bits(&want);
        // With a row bias: the separate pass Conv used to make, `canonical(dot + bias[row])`.
        let bias = values(seed ^ 0x51ed_270b, m, special);
        let want_bias: Vec<u32> =
            dots.iter().enumerate().map(|(i, &y)| canonical(y + bias[i / n.max(1)]).to_bits()).collect();
        let ldc = n + ldc_extra;
        let packed = PackedB::new(b, k, n, seed.is_multiple_of(2));
        assert_eq!(packed.dims(), (k, n));
        // Unpacking gives B back, transposed.
        let bt: Vec<u32> = (0..n * k).map(|i| b.data[(i % k) * b.rs + (i / k) * b.cs].to_bits()).collect();
        assert_eq!(bits(&packed.transposed()), bt);
        for path in KernelPath::available().into_iter().filter(|&p| p != KernelPath::Reference) {
            for threads in [1, 2, 3] {
                let made = MatRows(b);
                for bop in [BOp::Mat(b), BOp::Packed(&packed, 0), BOp::Rows(&made, 0)] {
                    for (epi, want) in
                        [(Epilogue::None, &want), (Epilogue::Canonical, &want), (Epilogue::RowBias(&bias), &want_bias)]
                    {
                        let mut out = vec![f32::NAN; m * ldc];
                        // Thread small shapes too.
                        gemm_with(path, threads, 0, m, n, k, a, bop, &mut out, ldc, epi);
                        let mut got: Vec<f32> = (0..m).flat_map(|i| out[i * ldc..i * ldc + n].to_vec()).collect();
                        if let Epilogue::None = epi {
                            canonical_nan(&mut got);
                        }
                        assert_eq!(
                            &bits(&got),
                            want,
                            "path {path:?}, threads {threads}, m {m} n {n} k {k} ta {ta} tb {tb} {bop:?} {epi:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn paths_parse_and_detect() {
        for p in KernelPath::ALL {
            assert_eq!(KernelPath::parse(p.name()), Some(p));
        }
        assert!(KernelPath::Reference.is_available() && KernelPath::Scalar.is_available());
        assert_eq!(KernelPath::from_setting(None), Ok(KernelPath::best()));
        assert_eq!(KernelPath::from_setting(Some("reference")), Ok(KernelPath::Reference));
        assert!(KernelPath::from_setting(Some("sse9")).is_err());
    }

    #[test]
    fn big_shapes_match_reference() {
        // Over the threading threshold, K over two blocks and not a multiple of 256,
        // N over one packed cache block, M over one row block.
        check(70, 530, 600, false, false, 0, 1, false);
        check(1, 2048 + 5, 300, false, false, 3, 2, false);
        check(3, 100, 1030, true, true, 0, 3, true);
        check(130, 20, 513, false, true, 1, 4, true);
        // Over one row cache block (MC), N not a multiple of a column group, K a multiple
        // of the block; and one row.
        check(250, 37, 512, false, false, 2, 7, true);
        check(1, 300, 257, true, false, 0, 8, true);
        // B rows a page apart (packed per call) and enough column panels to pack A.
        check(20, 1100, 300, false, false, 1, 9, true);
        // A packed B of several chunks, the last one partial, split over threads at
        // columns inside a chunk.
        check(2, 2 * CHUNK_STREAMED + 5, 40, false, true, 0, 10, true);
        check(7, 3 * CHUNK_STREAMED - 1, 20, true, false, 1, 11, true);
        // The other way round: a matrix-vector product on narrower chunks, and many rows
        // on streamed ones (an odd seed packs B as not streamed).
        check(1, 3 * CHUNK + 7, 70, false, false, 0, 13, true);
        check(9, 2 * CHUNK_STREAMED + 3, 50, false, true, 2, 14, true);
    }

    #[test]
    fn zero_k_gives_positive_zero() {
        check(3, 5, 0, false, false, 0, 5, false);
        let mut out = vec![-1.0f32; 4];
        for path in KernelPath::available().into_iter().filter(|&p| p != KernelPath::Reference) {
            gemm(
                path,
                1,
                2,
                2,
                0,
                Mat { data: &[], rs: 0, cs: 1 },
                Mat { data: &[], rs: 2, cs: 1 },
                &mut out,
                2,
                Epilogue::None,
            );
            assert!(out.iter().all(|x| x.to_bits() == 0));
        }
    }

    #[test]
    fn negative_zero_block_sums_to_positive_zero() {
        // A block result of -0.0 is added to a total of +0.0: the sum is +0.0.
        let a = vec![-0.0f32; 3];
        let b = vec![1.0f32; 3 * 17];
        check(1, 17, 3, false, false, 0, 6, false);
        for path in KernelPath::available().into_iter().filter(|&p| p != KernelPath::Reference) {
            let mut out = vec![0.0f32; 17];
            gemm(
                path,
                1,
                1,
                17,
                3,
                Mat { data: &a, rs: 3, cs: 1 },
                Mat { data: &b, rs: 17, cs: 1 },
                &mut out,
                17,
                Epilogue::None,
            );
            assert!(out.iter().all(|x| x.to_bits() == 0), "{path:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn every_path_and_thread_count_matches_reference(
            m in 1usize..20, n in 1usize..70, k in 0usize..700,
            ta: bool, tb: bool, ldc_extra in 0usize..3, seed: u64, special: bool,
        ) {
            check(m, n, k, ta, tb, ldc_extra, seed, special);
        }
    }
}
