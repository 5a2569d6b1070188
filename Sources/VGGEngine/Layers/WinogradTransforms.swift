/// The one-dimensional transforms of Winograd's minimal filtering algorithm
/// F(m, 3) (Lavin & Gray 2015, "Fast Algorithms for Convolutional Neural
/// Networks"). Each maps a few input vectors to a few output vectors, `n`
/// channels long, through a small constant matrix; the 2-D transforms
/// (`B^T d B`, `G g G^T`, `A^T M A` and the adjoints used by backward) apply
/// them along rows, then along columns. Pointers come in tables so that
/// zero padding (a shared zero vector) and discarded outputs (a sink) cost
/// nothing special.
///
/// Matrices, with α = m + 2 transform points:
///   input       B^T  α×α   V = B^T d B       d: α×α input tile
///   filter      G    α×3   U = G g G^T       g: 3×3 filter
///   output      A^T  m×α   Y = A^T M A       M = U ⊙ V summed over channels
///   outputAdj   A    α×m   dM = A dY A^T     (backward-weights: dY tile → transform domain)
///   filterAdj   G^T  3×α   dg = G^T dU G     (backward-weights: back to 3×3)
protocol WinogradTransform {
    /// Output tile side m.
    static var m: Int { get }
    /// Input tile side α = m + 2 and transform points per side.
    static var alpha: Int { get }
    static func input(_ s: SourceTable, _ d: DestinationTable, _ n: Int)
    static func output(_ s: SourceTable, _ d: DestinationTable, _ n: Int)
    /// `output`, then max(· + bias, 0): the fused epilogue of the forward.
    static func outputBiasReLU(_ s: SourceTable, _ d: DestinationTable, _ n: Int, bias: UnsafePointer<Float>)
    static func outputAdjoint(_ s: SourceTable, _ d: DestinationTable, _ n: Int)
    /// `outputAdjoint` of g masked by ReLU (g where y > 0, else 0), writing
    /// the masked g back through `g`: ReLU's backward and the first pass of
    /// the transform in one.
    static func outputAdjointMasked(_ g: DestinationTable, _ y: SourceTable, _ d: DestinationTable, _ n: Int)
    static func filter(_ s: SourceTable, _ d: DestinationTable, _ n: Int)
    static func filterAdjoint(_ s: SourceTable, _ d: DestinationTable, _ n: Int)
}

typealias SourceTable = UnsafeMutablePointer<UnsafePointer<Float>>
typealias DestinationTable = UnsafeMutablePointer<UnsafeMutablePointer<Float>>

/// Runs `body` at every channel offset: by eights, then one by one.
@inline(__always)
func forLanes(_ n: Int, _ wide: (Int) -> Void, _ narrow: (Int) -> Void) {
    var c = 0
    while c + 8 <= n { wide(c); c += 8 }
    while c < n { narrow(c); c += 1 }
}

/// F(2×2, 3×3): points 0, 1, −1, ∞.
///   B^T = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]
///   G   = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]
///   A^T = [1 1 1 0; 0 1 −1 −1]
enum WinogradF2: WinogradTransform {
    static var m: Int { 2 }
    static var alpha: Int { 4 }

    @inline(__always)
    static func input(_ s: SourceTable, _ d: DestinationTable, _ n: Int) {
        let s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3]
        let d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3]
        @inline(__always) func go<L: Lane>(_ c: Int, _: L.Type) {
            let x0 = L.load(s0 + c), x1 = L.load(s1 + c), x2 = L.load(s2 + c), x3 = L.load(s3 + c)
            (x0 - x2).store(d0 + c)
            (x1 + x2).store(d1 + c)
            (x2 - x1).store(d2 + c)
            (x1 - x3).store(d3 + c)
        }
        forLanes(n, { go($0, F8.self) }, { go($0, Float.self) })
    }

    @inline(__always)
    static func output(_ s: SourceTable, _ d: DestinationTable, _ n: Int) {
        let s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3]
        let d0 = d[0], d1 = d[1]
        @inline(__always) func go<L: Lane>(_ c: Int, _: L.Type) {
            let x0 = L.load(s0 + c), x1 = L.load(s1 + c), x2 = L.load(s2 + c), x3 = L.load(s3 + c)
            (x0 + x1 + x2).store(d0 + c)
            (x1 - x2 - x3).store(d1 + c)
        }
        forLanes(n, { go($0, F8.self) }, { go($0, Float.self) })
    }

    @inline(__always)
    static func outputBiasReLU(_ s: SourceTable, _ d: DestinationTable, _ n: Int, bias: UnsafePointer<Float>) {
        let s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3]
        let d0 = d[0], d1 = d[1]
        @inline(__always) func go<L: Lane>(_ c: Int, _: L.Type) {
            let x0 = L.load(s0 + c), x1 = L.load(s1 + c), x2 = L.load(s2 + c), x3 = L.load(s3 + c)
            let b = L.load(bias + c)
            (x0 + x1 + x2).biasReLU(b).store(d0 + c)
            (x1 - x2 - x3).biasReLU(b).store(d1 + c)
        }
        forLanes(n, { go($0, F8.self) }, { go($0, Float.self) })
    }

    @inline(__always)
    static func outputAdjoint(_ s: SourceTable, _ d: DestinationTable, _ n: Int) {
        let s0 = s[0], s1 = s[1]
        let d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3]
        @inline(__always) func go<L: Lane>(_ c: Int, _: L.Type) {
            let g0 = L.load(s0 + c), g1 = L.load(s1 + c)
            g0.store(d0 + c)
            (g0 + g1).store(d1 + c)
            (g0 - g1).store(d2 + c)
            (-1 * g1).store(d3 + c)
        }
        forLanes(n, { go($0, F8.self) }, { go($0, Float.self) })
    }

    @inline(__always)
    static func outputAdjointMasked(_ g: DestinationTable, _ y: SourceTable, _ d: DestinationTable, _ n: Int) {
        let s0 = g[0], s1 = g[1], y0 = y[0], y1 = y[1]
        let d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3]
        @inline(__always) func go<L: Lane>(_ c: Int, _: L.Type) {
            let g0 = L.load(s0 + c).reluMask(L.load(y0 + c)), g1 = L.load(s1 + c).reluMask(L.load(y1 + c))
            g0.store(s0 + c); g1.store(s1 + c)
            g0.store(d0 + c)
            (g0 + g1).store(d1 + c)
            (g0 - g1).store(d2 + c)
            (-1 * g1).store(d3 + c)
        }
        forLanes(n, { go($0, F8.self) }, { go($0, Float.self) })
    }

    @inline(__always)
    static func filter(_ s: SourceTable, _ d: DestinationTable, _ n: Int) {
        let s0 = s[0], s1 = s[1], s2 = s[2]
        let d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3]
        @inline(__always) func go<L: Lane>(_ c: Int, _: L.Type) {
            let g0 = L.load(s0 + c), g1 = L.load(s1 + c), g2 = L.load(s2 + c)
            let e = 0.5 * (g0 + g2), o = 0.5 * g1
            g0.store(d0 + c)
            (e + o).store(d1 + c)
            (e - o).store(d2 + c)
            g2.store(d3 + c)
        }
        forLanes(n, { go($0, F8.self) }, { go($0, Float.self) })
    }

    @inline(__always)
    static func filterAdjoint(_ s: SourceTable, _ d: DestinationTable, _ n: Int) {
        let s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3]
        let d0 = d[0], d1 = d[1], d2 = d[2]
        @inline(__always) func go<L: Lane>(_ c: Int, _: L.Type) {
            let u0 = L.load(s0 + c), u1 = L.load(s1 + c), u2 = L.load(s2 + c), u3 = L.load(s3 + c)
            let e = 0.5 * (u1 + u2)
            (u0 + e).store(d0 + c)
            (0.5 * (u1 - u2)).store(d1 + c)
            (e + u3).store(d2 + c)
        }
        forLanes(n, { go($0, F8.self) }, { go($0, Float.self) })
    }
}

/// F(4×4, 3×3): points 0, 1, −1, 2, −2, ∞ (Lavin & Gray's matrices).
///   B^T = [4  0 −5  0 1 0
///          0 −4 −4  1 1 0
///          0  4 −4 −1 1 0
///          0 −2 −1  2 1 0
///          0  2 −1 −2 1 0
///          0  4  0 −5 0 1]
///   G   = [1/4 0 0; −1/6 −1/6 −1/6; −1/6 1/6 −1/6; 1/24 1/12 1/6; 1/24 −1/12 1/6; 0 0 1]
///   A^T = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]
enum WinogradF4: WinogradTransform {
    static var m: Int { 4 }
    static var alpha: Int { 6 }

    @inline(__always)
    static func input(_ s: SourceTable, _ d: DestinationTable, _ n: Int) {
        let s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3], s4 = s[4], s5 = s[5]
        let d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3], d4 = d[4], d5 = d[5]
        @inline(__always) func go<L: Lane>(_ c: Int, _: L.Type) {
            let x0 = L.load(s0 + c), x1 = L.load(s1 + c), x2 = L.load(s2 + c)
            let x3 = L.load(s3 + c), x4 = L.load(s4 + c), x5 = L.load(s5 + c)
            let a = x4 - 4 * x2          // rows 1, 2
            let b = x3 - 4 * x1
            let p = x4 - x2              // rows 3, 4
            let q = 2 * (x3 - x1)
            (4 * x0 - 5 * x2 + x4).store(d0 + c)
            (a + b).store(d1 + c)
            (a - b).store(d2 + c)
            (p + q).store(d3 + c)
            (p - q).store(d4 + c)
            (4 * x1 - 5 * x3 + x5).store(d5 + c)
        }
        forLanes(n, { go($0, F8.self) }, { go($0, Float.self) })
    }

    @inline(__always)
    static func output(_ s: SourceTable, _ d: DestinationTable, _ n: Int) {
        let s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3], s4 = s[4], s5 = s[5]
        let d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3]
        @inline(__always) func go<L: Lane>(_ c: Int, _: L.Type) {
            let x0 = L.load(s0 + c), x1 = L.load(s1 + c), x2 = L.load(s2 + c)
            let x3 = L.load(s3 + c), x4 = L.load(s4 + c), x5 = L.load(s5 + c)
            let e1 = x1 + x2, o1 = x1 - x2, e2 = x3 + x4, o2 = x3 - x4
            (x0 + e1 + e2).store(d0 + c)
            (o1 + 2 * o2).store(d1 + c)
            (e1 + 4 * e2).store(d2 + c)
            (o1 + 8 * o2 + x5).store(d3 + c)
        }
        forLanes(n, { go($0, F8.self) }, { go($0, Float.self) })
    }

    @inline(__always)
    static func outputBiasReLU(_ s: SourceTable, _ d: DestinationTable, _ n: Int, bias: UnsafePointer<Float>) {
        let s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3], s4 = s[4], s5 = s[5]
        let d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3]
        @inline(__always) func go<L: Lane>(_ c: Int, _: L.Type) {
            let x0 = L.load(s0 + c), x1 = L.load(s1 + c), x2 = L.load(s2 + c)
            let x3 = L.load(s3 + c), x4 = L.load(s4 + c), x5 = L.load(s5 + c)
            let b = L.load(bias + c)
            let e1 = x1 + x2, o1 = x1 - x2, e2 = x3 + x4, o2 = x3 - x4
            (x0 + e1 + e2).biasReLU(b).store(d0 + c)
            (o1 + 2 * o2).biasReLU(b).store(d1 + c)
            (e1 + 4 * e2).biasReLU(b).store(d2 + c)
            (o1 + 8 * o2 + x5).biasReLU(b).store(d3 + c)
        }
        forLanes(n, { go($0, F8.self) }, { go($0, Float.self) })
    }

    /// A = (A^T)^T: [1 0 0 0; 1 1 1 1; 1 −1 1 −1; 1 2 4 8; 1 −2 4 −8; 0 0 0 1].
    @inline(__always)
    static func outputAdjoint(_ s: SourceTable, _ d: DestinationTable, _ n: Int) {
        let s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3]
        let d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3], d4 = d[4], d5 = d[5]
        @inline(__always) func go<L: Lane>(_ c: Int, _: L.Type) {
            let g0 = L.load(s0 + c), g1 = L.load(s1 + c), g2 = L.load(s2 + c), g3 = L.load(s3 + c)
            let e1 = g0 + g2, o1 = g1 + g3
            let e2 = g0 + 4 * g2, o2 = 2 * g1 + 8 * g3
            g0.store(d0 + c)
            (e1 + o1).store(d1 + c)
            (e1 - o1).store(d2 + c)
            (e2 + o2).store(d3 + c)
            (e2 - o2).store(d4 + c)
            g3.store(d5 + c)
        }
        forLanes(n, { go($0, F8.self) }, { go($0, Float.self) })
    }

    @inline(__always)
    static func outputAdjointMasked(_ g: DestinationTable, _ y: SourceTable, _ d: DestinationTable, _ n: Int) {
        let s0 = g[0], s1 = g[1], s2 = g[2], s3 = g[3]
        let y0 = y[0], y1 = y[1], y2 = y[2], y3 = y[3]
        let d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3], d4 = d[4], d5 = d[5]
        @inline(__always) func go<L: Lane>(_ c: Int, _: L.Type) {
            let g0 = L.load(s0 + c).reluMask(L.load(y0 + c)), g1 = L.load(s1 + c).reluMask(L.load(y1 + c))
            let g2 = L.load(s2 + c).reluMask(L.load(y2 + c)), g3 = L.load(s3 + c).reluMask(L.load(y3 + c))
            g0.store(s0 + c); g1.store(s1 + c); g2.store(s2 + c); g3.store(s3 + c)
            let e1 = g0 + g2, o1 = g1 + g3
            let e2 = g0 + 4 * g2, o2 = 2 * g1 + 8 * g3
            g0.store(d0 + c)
            (e1 + o1).store(d1 + c)
            (e1 - o1).store(d2 + c)
            (e2 + o2).store(d3 + c)
            (e2 - o2).store(d4 + c)
            g3.store(d5 + c)
        }
        forLanes(n, { go($0, F8.self) }, { go($0, Float.self) })
    }

    @inline(__always)
    static func filter(_ s: SourceTable, _ d: DestinationTable, _ n: Int) {
        let s0 = s[0], s1 = s[1], s2 = s[2]
        let d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3], d4 = d[4], d5 = d[5]
        @inline(__always) func go<L: Lane>(_ c: Int, _: L.Type) {
            let g0 = L.load(s0 + c), g1 = L.load(s1 + c), g2 = L.load(s2 + c)
            let e1 = (-1.0 / 6) * (g0 + g2), o1 = (-1.0 / 6) * g1
            let e2 = (1.0 / 24) * g0 + (1.0 / 6) * g2, o2 = (1.0 / 12) * g1
            (0.25 * g0).store(d0 + c)
            (e1 + o1).store(d1 + c)
            (e1 - o1).store(d2 + c)
            (e2 + o2).store(d3 + c)
            (e2 - o2).store(d4 + c)
            g2.store(d5 + c)
        }
        forLanes(n, { go($0, F8.self) }, { go($0, Float.self) })
    }

    /// G^T = [1/4 −1/6 −1/6 1/24 1/24 0; 0 −1/6 1/6 1/12 −1/12 0; 0 −1/6 −1/6 1/6 1/6 1].
    @inline(__always)
    static func filterAdjoint(_ s: SourceTable, _ d: DestinationTable, _ n: Int) {
        let s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3], s4 = s[4], s5 = s[5]
        let d0 = d[0], d1 = d[1], d2 = d[2]
        @inline(__always) func go<L: Lane>(_ c: Int, _: L.Type) {
            let u0 = L.load(s0 + c), u1 = L.load(s1 + c), u2 = L.load(s2 + c)
            let u3 = L.load(s3 + c), u4 = L.load(s4 + c), u5 = L.load(s5 + c)
            let e1 = u1 + u2, o1 = u1 - u2, e2 = u3 + u4, o2 = u3 - u4
            (0.25 * u0 - (1.0 / 6) * e1 + (1.0 / 24) * e2).store(d0 + c)
            ((1.0 / 12) * o2 - (1.0 / 6) * o1).store(d1 + c)
            ((1.0 / 6) * (e2 - e1) + u5).store(d2 + c)
        }
        forLanes(n, { go($0, F8.self) }, { go($0, Float.self) })
    }
}

/// F(6×6, 3×3): points 0, 1, −1, 2, −2, ½, −½, ∞ (the matrices of Lavin &
/// Gray's wincnn; NNPACK trains with the same). 64 products for 36 outputs:
/// 1.78 multiply-adds per output pixel and channel pair instead of 9
/// (5.06× fewer; F(4×4): 4×), and 64/36 = 1.78× the input's floats in the
/// transform domain against F(4×4)'s 2.25×, so its memory-bound transforms
/// move less data per output. Larger constants: more rounding than F(4×4)
/// (`WinogradTests` bounds both against im2col).
///   B^T = [1  0   −21/4  0     21/4   0    −1 0
///          0  1    1    −17/4 −17/4   1     1 0
///          0 −1    1     17/4 −17/4  −1     1 0
///          0  1/2  1/4  −5/2  −5/4    2     1 0
///          0 −1/2  1/4   5/2  −5/4   −2     1 0
///          0  2    4    −5/2  −5      1/2   1 0
///          0 −2    4     5/2  −5     −1/2   1 0
///          0 −1    0     21/4  0    −21/4   0 1]
///   G   = [1 0 0; −2/9 −2/9 −2/9; −2/9 2/9 −2/9; 1/90 1/45 2/45; 1/90 −1/45 2/45;
///          32/45 16/45 8/45; 32/45 −16/45 8/45; 0 0 1]
///   A^T = [1 1  1  1   1   1     1     0
///          0 1 −1  2  −2   1/2  −1/2   0
///          0 1  1  4   4   1/4   1/4   0
///          0 1 −1  8  −8   1/8  −1/8   0
///          0 1  1 16  16   1/16  1/16  0
///          0 1 −1 32 −32   1/32 −1/32  1]
/// Each row pair ±p shares its even and odd parts, computed once.
enum WinogradF6: WinogradTransform {
    static var m: Int { 6 }
    static var alpha: Int { 8 }

    @inline(__always)
    static func input(_ s: SourceTable, _ d: DestinationTable, _ n: Int) {
        let s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3], s4 = s[4], s5 = s[5], s6 = s[6], s7 = s[7]
        let d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3], d4 = d[4], d5 = d[5], d6 = d[6], d7 = d[7]
        @inline(__always) func go<L: Lane>(_ c: Int, _: L.Type) {
            let x0 = L.load(s0 + c), x1 = L.load(s1 + c), x2 = L.load(s2 + c), x3 = L.load(s3 + c)
            let x4 = L.load(s4 + c), x5 = L.load(s5 + c), x6 = L.load(s6 + c), x7 = L.load(s7 + c)
            let e1 = x2 + x6 - 4.25 * x4, o1 = x1 + x5 - 4.25 * x3           // points ±1
            let e2 = 0.25 * x2 - 1.25 * x4 + x6, o2 = 0.5 * x1 - 2.5 * x3 + 2 * x5   // ±2 (scaled)
            let e3 = 4 * x2 - 5 * x4 + x6, o3 = 2 * x1 - 2.5 * x3 + 0.5 * x5     // ±½ (scaled)
            (x0 - x6 + 5.25 * (x4 - x2)).store(d0 + c)
            (e1 + o1).store(d1 + c)
            (e1 - o1).store(d2 + c)
            (e2 + o2).store(d3 + c)
            (e2 - o2).store(d4 + c)
            (e3 + o3).store(d5 + c)
            (e3 - o3).store(d6 + c)
            (x7 - x1 + 5.25 * (x3 - x5)).store(d7 + c)
        }
        forLanes(n, { go($0, F8.self) }, { go($0, Float.self) })
    }

    @inline(__always)
    static func output(_ s: SourceTable, _ d: DestinationTable, _ n: Int) {
        let s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3], s4 = s[4], s5 = s[5], s6 = s[6], s7 = s[7]
        let d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3], d4 = d[4], d5 = d[5]
        @inline(__always) func go<L: Lane>(_ c: Int, _: L.Type) {
            let x0 = L.load(s0 + c), x1 = L.load(s1 + c), x2 = L.load(s2 + c), x3 = L.load(s3 + c)
            let x4 = L.load(s4 + c), x5 = L.load(s5 + c), x6 = L.load(s6 + c), x7 = L.load(s7 + c)
            let e1 = x1 + x2, o1 = x1 - x2, e2 = x3 + x4, o2 = x3 - x4, e3 = x5 + x6, o3 = x5 - x6
            (x0 + e1 + e2 + e3).store(d0 + c)
            (o1 + 2 * o2 + 0.5 * o3).store(d1 + c)
            (e1 + 4 * e2 + 0.25 * e3).store(d2 + c)
            (o1 + 8 * o2 + 0.125 * o3).store(d3 + c)
            (e1 + 16 * e2 + 0.0625 * e3).store(d4 + c)
            (o1 + 32 * o2 + 0.03125 * o3 + x7).store(d5 + c)
        }
        forLanes(n, { go($0, F8.self) }, { go($0, Float.self) })
    }

    @inline(__always)
    static func outputBiasReLU(_ s: SourceTable, _ d: DestinationTable, _ n: Int, bias: UnsafePointer<Float>) {
        let s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3], s4 = s[4], s5 = s[5], s6 = s[6], s7 = s[7]
        let d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3], d4 = d[4], d5 = d[5]
        @inline(__always) func go<L: Lane>(_ c: Int, _: L.Type) {
            let x0 = L.load(s0 + c), x1 = L.load(s1 + c), x2 = L.load(s2 + c), x3 = L.load(s3 + c)
            let x4 = L.load(s4 + c), x5 = L.load(s5 + c), x6 = L.load(s6 + c), x7 = L.load(s7 + c)
            let b = L.load(bias + c)
            let e1 = x1 + x2, o1 = x1 - x2, e2 = x3 + x4, o2 = x3 - x4, e3 = x5 + x6, o3 = x5 - x6
            (x0 + e1 + e2 + e3).biasReLU(b).store(d0 + c)
            (o1 + 2 * o2 + 0.5 * o3).biasReLU(b).store(d1 + c)
            (e1 + 4 * e2 + 0.25 * e3).biasReLU(b).store(d2 + c)
            (o1 + 8 * o2 + 0.125 * o3).biasReLU(b).store(d3 + c)
            (e1 + 16 * e2 + 0.0625 * e3).biasReLU(b).store(d4 + c)
            (o1 + 32 * o2 + 0.03125 * o3 + x7).biasReLU(b).store(d5 + c)
        }
        forLanes(n, { go($0, F8.self) }, { go($0, Float.self) })
    }

    /// A = (A^T)^T, 8×6: rows 1, (1, ±1, 1, ±1, 1, ±1), (1, ±2, 4, ±8, 16, ±32),
    /// (1, ±½, ¼, ±⅛, 1/16, ±1/32), (0 0 0 0 0 1).
    @inline(__always)
    static func adjoint<L: Lane>(_ g0: L, _ g1: L, _ g2: L, _ g3: L, _ g4: L, _ g5: L, _ d: DestinationTable, _ c: Int) {
        let e1 = g0 + g2 + g4, o1 = g1 + g3 + g5
        let e2 = g0 + 4 * g2 + 16 * g4, o2 = 2 * g1 + 8 * g3 + 32 * g5
        let e3 = g0 + 0.25 * g2 + 0.0625 * g4, o3 = 0.5 * g1 + 0.125 * g3 + 0.03125 * g5
        g0.store(d[0] + c)
        (e1 + o1).store(d[1] + c)
        (e1 - o1).store(d[2] + c)
        (e2 + o2).store(d[3] + c)
        (e2 - o2).store(d[4] + c)
        (e3 + o3).store(d[5] + c)
        (e3 - o3).store(d[6] + c)
        g5.store(d[7] + c)
    }

    @inline(__always)
    static func outputAdjoint(_ s: SourceTable, _ d: DestinationTable, _ n: Int) {
        let s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3], s4 = s[4], s5 = s[5]
        @inline(__always) func go<L: Lane>(_ c: Int, _: L.Type) {
            adjoint(L.load(s0 + c), L.load(s1 + c), L.load(s2 + c), L.load(s3 + c), L.load(s4 + c), L.load(s5 + c), d, c)
        }
        forLanes(n, { go($0, F8.self) }, { go($0, Float.self) })
    }

    @inline(__always)
    static func outputAdjointMasked(_ g: DestinationTable, _ y: SourceTable, _ d: DestinationTable, _ n: Int) {
        let s0 = g[0], s1 = g[1], s2 = g[2], s3 = g[3], s4 = g[4], s5 = g[5]
        let y0 = y[0], y1 = y[1], y2 = y[2], y3 = y[3], y4 = y[4], y5 = y[5]
        @inline(__always) func go<L: Lane>(_ c: Int, _: L.Type) {
            let g0 = L.load(s0 + c).reluMask(L.load(y0 + c)), g1 = L.load(s1 + c).reluMask(L.load(y1 + c))
            let g2 = L.load(s2 + c).reluMask(L.load(y2 + c)), g3 = L.load(s3 + c).reluMask(L.load(y3 + c))
            let g4 = L.load(s4 + c).reluMask(L.load(y4 + c)), g5 = L.load(s5 + c).reluMask(L.load(y5 + c))
            g0.store(s0 + c); g1.store(s1 + c); g2.store(s2 + c); g3.store(s3 + c); g4.store(s4 + c); g5.store(s5 + c)
            adjoint(g0, g1, g2, g3, g4, g5, d, c)
        }
        forLanes(n, { go($0, F8.self) }, { go($0, Float.self) })
    }

    @inline(__always)
    static func filter(_ s: SourceTable, _ d: DestinationTable, _ n: Int) {
        let s0 = s[0], s1 = s[1], s2 = s[2]
        let d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3], d4 = d[4], d5 = d[5], d6 = d[6], d7 = d[7]
        @inline(__always) func go<L: Lane>(_ c: Int, _: L.Type) {
            let g0 = L.load(s0 + c), g1 = L.load(s1 + c), g2 = L.load(s2 + c)
            let e1 = (-2.0 / 9) * (g0 + g2), o1 = (-2.0 / 9) * g1
            let e2 = (1.0 / 90) * g0 + (2.0 / 45) * g2, o2 = (1.0 / 45) * g1
            let e3 = (32.0 / 45) * g0 + (8.0 / 45) * g2, o3 = (16.0 / 45) * g1
            g0.store(d0 + c)
            (e1 + o1).store(d1 + c)
            (e1 - o1).store(d2 + c)
            (e2 + o2).store(d3 + c)
            (e2 - o2).store(d4 + c)
            (e3 + o3).store(d5 + c)
            (e3 - o3).store(d6 + c)
            g2.store(d7 + c)
        }
        forLanes(n, { go($0, F8.self) }, { go($0, Float.self) })
    }

    /// G^T, 3×8.
    @inline(__always)
    static func filterAdjoint(_ s: SourceTable, _ d: DestinationTable, _ n: Int) {
        let s0 = s[0], s1 = s[1], s2 = s[2], s3 = s[3], s4 = s[4], s5 = s[5], s6 = s[6], s7 = s[7]
        let d0 = d[0], d1 = d[1], d2 = d[2]
        @inline(__always) func go<L: Lane>(_ c: Int, _: L.Type) {
            let u0 = L.load(s0 + c), u1 = L.load(s1 + c), u2 = L.load(s2 + c), u3 = L.load(s3 + c)
            let u4 = L.load(s4 + c), u5 = L.load(s5 + c), u6 = L.load(s6 + c), u7 = L.load(s7 + c)
            let e1 = u1 + u2, o1 = u1 - u2, e2 = u3 + u4, o2 = u3 - u4, e3 = u5 + u6, o3 = u5 - u6
            (u0 - (2.0 / 9) * e1 + (1.0 / 90) * e2 + (32.0 / 45) * e3).store(d0 + c)
            ((1.0 / 45) * o2 + (16.0 / 45) * o3 - (2.0 / 9) * o1).store(d1 + c)
            ((2.0 / 45) * e2 + (8.0 / 45) * e3 - (2.0 / 9) * e1 + u7).store(d2 + c)
        }
        forLanes(n, { go($0, F8.self) }, { go($0, Float.self) })
    }
}
