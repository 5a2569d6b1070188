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
