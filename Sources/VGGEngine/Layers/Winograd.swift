import Vocabulary

/// The 2-D Winograd convolution F(m×m, 3×3) for 3×3, stride 1, SAME
/// convolutions on NHWC tensors, built from the 1-D transforms of
/// `WinogradTransform` and one sgemm per transform-domain point.
///
/// Tiles. Output tile (ty, tx) of image n covers output pixels
/// [m·ty, m·ty + m) × [m·tx, m·tx + m); its input tile is the α×α window
/// starting one pixel up and left (α = m + 2). Tiles are numbered image by
/// image, row by row; the last row and column of tiles may hang over the
/// image: inputs there read a zero vector, outputs go to a sink.
///
/// Layout of one chunk of T tiles (the transform-domain point p = ξ·α + ν
/// is the slowest index, so that each point's matrix is contiguous):
///   V[p][t][c]   transformed inputs      α²·T·C floats
///   U[p][c][k]   transformed filter      α²·C·K floats
///   M[p][t][k] = V[p] · U[p]             α²·T·K floats: α² sgemm [T×C]·[C×K]
/// and the output transform reads M[·][t][k] for one tile and writes its
/// m×m pixels, adding the bias and applying ReLU on the way.
///
/// Backward (Lavin & Gray §4):
/// - data: dX is the SAME convolution of dY with the filter rotated by 180°
///   and with C and K swapped, so it is this same forward with
///   U'[p][c][k] = transform of W[2−kh][2−kw][c][k] used transposed:
///   dX_p[T×C] = dY_p[T×K] · U'_p^T.
/// - weights: the adjoint of the forward. dM = A dY A^T per tile (m×m → α×α),
///   dU[p] = Σ_chunks V[p]^T · dM[p] (α² sgemm [C×T]·[T×K]), dW = G^T dU G.
struct TileGrid {
    let height: Int, width: Int, m: Int
    let tilesH: Int, tilesW: Int

    init(height: Int, width: Int, m: Int) {
        self.height = height; self.width = width; self.m = m
        tilesH = (height + m - 1) / m
        tilesW = (width + m - 1) / m
    }

    var perImage: Int { tilesH * tilesW }

    /// Image and top-left output pixel of tile t.
    @inline(__always)
    func origin(_ t: Int) -> (image: Int, y: Int, x: Int) {
        let image = t / perImage, r = t - image * perImage
        let ty = r / tilesW
        return (image, ty * m, (r - ty * tilesW) * m)
    }
}

enum Winograd {
    static var block: Int { ConvWorkspace.block }

    // MARK: Tiles

    /// V[p][tl][c] = (B^T d B)[p] for the input tile of tile t, all channels.
    @inline(__always)
    static func inputTile<T: WinogradTransform>(_: T.Type, x: UnsafePointer<Float>, channels ci: Int, grid: TileGrid,
                                                tile t: Int, local tl: Int, chunk tc: Int,
                                                into v: UnsafeMutablePointer<Float>,
                                                scratch s: TransformScratch, zeros: UnsafePointer<Float>) {
        let a = T.alpha, h = grid.height, w = grid.width
        let (img, oy, ox) = grid.origin(t)
        let image = x + img * h * w * ci
        let y0 = oy - 1, x0 = ox - 1
        let interior = y0 >= 0 && x0 >= 0 && y0 + a <= h && x0 + a <= w
        var c0 = 0
        while c0 < ci {
            let n = min(block, ci - c0)
            for i in 0..<a {
                let iy = y0 + i
                if interior {
                    let row = image + (iy * w + x0) * ci + c0
                    for j in 0..<a { s.sources[j] = row + j * ci }
                } else {
                    let rowOK = iy >= 0 && iy < h
                    for j in 0..<a {
                        let ix = x0 + j
                        s.sources[j] = rowOK && ix >= 0 && ix < w ? image + (iy * w + ix) * ci + c0 : zeros
                    }
                }
                for j in 0..<a { s.destinations[j] = s.rows + (i * a + j) * n }
                T.input(s.sources, s.destinations, n)
            }
            for j in 0..<a {
                for i in 0..<a {
                    s.sources[i] = UnsafePointer(s.rows + (i * a + j) * n)
                    s.destinations[i] = v + ((i * a + j) * tc + tl) * ci + c0
                }
                T.input(s.sources, s.destinations, n)
            }
            c0 += n
        }
    }

    /// The m×m output pixels of tile t from M[·][tl][·]: A^T M A, then
    /// + bias and ReLU when `bias` is given.
    @inline(__always)
    static func outputTile<T: WinogradTransform>(_: T.Type, planes: UnsafePointer<Float>, channels co: Int, grid: TileGrid,
                                                 tile t: Int, local tl: Int, chunk tc: Int,
                                                 into y: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?,
                                                 scratch s: TransformScratch) {
        let a = T.alpha, mm = T.m, h = grid.height, w = grid.width
        let (img, oy, ox) = grid.origin(t)
        let image = y + img * h * w * co
        var c0 = 0
        while c0 < co {
            let n = min(block, co - c0)
            for i in 0..<a {
                for j in 0..<a { s.sources[j] = planes + ((i * a + j) * tc + tl) * co + c0 }
                for j in 0..<mm { s.destinations[j] = s.rows + (i * mm + j) * n }
                T.output(s.sources, s.destinations, n)
            }
            for j in 0..<mm {
                let ix = ox + j
                for i in 0..<a { s.sources[i] = UnsafePointer(s.rows + (i * mm + j) * n) }
                for i in 0..<mm {
                    let iy = oy + i
                    s.destinations[i] = iy < h && ix < w ? image + (iy * w + ix) * co + c0 : s.sink
                }
                if let bias {
                    T.outputBiasReLU(s.sources, s.destinations, n, bias: bias + c0)
                } else {
                    T.output(s.sources, s.destinations, n)
                }
            }
            c0 += n
        }
    }

    /// dM[p][tl][k] = (A dY A^T)[p] for the m×m output-gradient tile of
    /// tile t, with ReLU's backward applied to those pixels of dY on the way
    /// and written back (dY = 0 where y ≤ 0): every pixel belongs to exactly
    /// one tile, so this is the one pass over dY and y that the layer needs.
    /// Pixels outside the image read y from the zero vector, so their
    /// gradient (read from and written to the sink) is 0. Without `y` (the
    /// max-pool after the layer applied ReLU's backward already) pixels in the
    /// image are masked with ones, which leaves dY as it is.
    @inline(__always)
    static func gradientTile<T: WinogradTransform>(_: T.Type, dy: UnsafeMutablePointer<Float>, y: UnsafePointer<Float>?,
                                                   channels co: Int, grid: TileGrid,
                                                   tile t: Int, local tl: Int, chunk tc: Int,
                                                   into planes: UnsafeMutablePointer<Float>,
                                                   scratch s: TransformScratch, zeros: UnsafePointer<Float>,
                                                   positives: UnsafePointer<Float>) {
        let a = T.alpha, mm = T.m, h = grid.height, w = grid.width
        let (img, oy, ox) = grid.origin(t)
        let gImage = dy + img * h * w * co
        // Without y (ReLU's backward applied already) the mask is all ones.
        let yImage = y.map { $0 + img * h * w * co }
        var c0 = 0
        while c0 < co {
            let n = min(block, co - c0)
            for i in 0..<mm {
                let iy = oy + i
                for j in 0..<mm {
                    let ix = ox + j
                    if iy < h && ix < w {
                        let off = (iy * w + ix) * co + c0
                        s.destinations[a + j] = gImage + off
                        s.others[j] = yImage.map { $0 + off } ?? positives
                    } else {
                        s.destinations[a + j] = s.sink
                        s.others[j] = zeros
                    }
                }
                for j in 0..<a { s.destinations[j] = s.rows + (i * a + j) * n }
                T.outputAdjointMasked(s.destinations + a, s.others, s.destinations, n)
            }
            for j in 0..<a {
                for i in 0..<mm { s.sources[i] = UnsafePointer(s.rows + (i * a + j) * n) }
                for i in 0..<a { s.destinations[i] = planes + ((i * a + j) * tc + tl) * co + c0 }
                T.outputAdjoint(s.sources, s.destinations, n)
            }
            c0 += n
        }
    }

    // MARK: Filters

    /// U[p][c][k] = (G g G^T)[p] with g = W[·][·][c][k], or, with `flip`,
    /// g = W[2−·][2−·][c][k] (the rotated filter of backward-data).
    static func transformFilter<T: WinogradTransform>(_: T.Type, weights wt: UnsafePointer<Float>, c: Int, k: Int,
                                                      flip: Bool, into u: UnsafeMutablePointer<Float>,
                                                      workspace ws: ConvWorkspace) {
        let a = T.alpha
        parallelRanges(c, parts: ws.parts) { range, slot in
            let s = ws.slots[slot]
            for ci in range {
                var k0 = 0
                while k0 < k {
                    let n = min(block, k - k0)
                    for kw in 0..<3 {
                        for kh in 0..<3 {
                            let tap = flip ? (2 - kh) * 3 + (2 - kw) : kh * 3 + kw
                            s.sources[kh] = wt + (tap * c + ci) * k + k0
                        }
                        for i in 0..<a { s.destinations[i] = s.rows + (i * 3 + kw) * n }
                        T.filter(s.sources, s.destinations, n)
                    }
                    for i in 0..<a {
                        for kw in 0..<3 { s.sources[kw] = UnsafePointer(s.rows + (i * 3 + kw) * n) }
                        for j in 0..<a { s.destinations[j] = u + ((i * a + j) * c + ci) * k + k0 }
                        T.filter(s.sources, s.destinations, n)
                    }
                    k0 += n
                }
            }
        }
    }

    /// dW[kh][kw][c][k] = (G^T dU G)[kh][kw] with dU[p][c][k].
    static func filterGradient<T: WinogradTransform>(_: T.Type, du: UnsafePointer<Float>, c: Int, k: Int,
                                                     into dw: UnsafeMutablePointer<Float>, workspace ws: ConvWorkspace) {
        let a = T.alpha
        parallelRanges(c, parts: ws.parts) { range, slot in
            let s = ws.slots[slot]
            for ci in range {
                var k0 = 0
                while k0 < k {
                    let n = min(block, k - k0)
                    for j in 0..<a {
                        for i in 0..<a { s.sources[i] = du + ((i * a + j) * c + ci) * k + k0 }
                        for kh in 0..<3 { s.destinations[kh] = s.rows + (kh * a + j) * n }
                        T.filterAdjoint(s.sources, s.destinations, n)
                    }
                    for kh in 0..<3 {
                        for j in 0..<a { s.sources[j] = UnsafePointer(s.rows + (kh * a + j) * n) }
                        for kw in 0..<3 { s.destinations[kw] = dw + ((kh * 3 + kw) * c + ci) * k + k0 }
                        T.filterAdjoint(s.sources, s.destinations, n)
                    }
                    k0 += n
                }
            }
        }
    }

    // MARK: Whole layers

    /// y = conv(x, filter) over a batch, chunk by chunk: transform the
    /// chunk's input tiles, α² sgemm, inverse-transform (with bias + ReLU
    /// when `bias` is given). `filter` is U[p][ci][co], or with `transposed`
    /// U[p][co][ci]. Returns the seconds spent in sgemm.
    static func convolve<T: WinogradTransform>(_ kind: T.Type, input x: UnsafePointer<Float>, inChannels ci: Int,
                                               output y: UnsafeMutablePointer<Float>, outChannels co: Int,
                                               grid: TileGrid, batch: Int, chunkTiles: Int,
                                               filter u: UnsafePointer<Float>, transposed: Bool,
                                               bias: UnsafePointer<Float>?, workspace ws: ConvWorkspace) -> Double {
        let a2 = T.alpha * T.alpha
        let total = batch * grid.perImage
        let parts = ws.parts
        var gemm = 0.0
        var first = 0
        while first < total {
            let tc = min(chunkTiles, total - first)
            let v = ws.buffer, mOut = ws.buffer + a2 * tc * ci
            parallelRanges(tc, parts: parts) { range, slot in
                let s = ws.slots[slot]
                for tl in range {
                    inputTile(kind, x: x, channels: ci, grid: grid, tile: first + tl, local: tl, chunk: tc,
                              into: v, scratch: s, zeros: ws.zeros)
                }
            }
            let g0 = Clock.now()
            parallelRanges(a2, parts: parts) { points, _ in
                for p in points {
                    // M_p[T, co] = V_p[T, ci] · U_p[ci, co]
                    BLAS.sgemm(transB: transposed, m: tc, n: co, k: ci,
                               a: v + p * tc * ci, lda: ci, b: u + p * ci * co, ldb: transposed ? ci : co,
                               beta: 0, c: mOut + p * tc * co, ldc: co)
                }
            }
            gemm += Clock.now() - g0
            parallelRanges(tc, parts: parts) { range, slot in
                let s = ws.slots[slot]
                for tl in range {
                    outputTile(kind, planes: mOut, channels: co, grid: grid, tile: first + tl, local: tl, chunk: tc,
                               into: y, bias: bias, scratch: s)
                }
            }
            first += tc
        }
        return gemm
    }

    /// dU[p][c][k] = Σ_tiles V[p][t][c] · (A dY A^T)[p][t][k] into
    /// `ws.filter`, with ReLU's backward applied to dY in place on the way
    /// (unless `y` is nil: the max-pool after the layer applied it);
    /// then dW = G^T dU G. The bias gradient is Σ dY over the image, and the
    /// transform-domain point (1, 1) (row [1 1 … 1] of A in both directions)
    /// of a tile is exactly the sum of its m×m gradients: db = Σ_tiles
    /// dM[(1,1)][t][·], one sgemv per chunk. Returns the seconds spent in
    /// BLAS.
    static func weightGradient<T: WinogradTransform>(_ kind: T.Type, input x: UnsafePointer<Float>, inChannels c: Int,
                                                     outputGrad dy: UnsafeMutablePointer<Float>,
                                                     output y: UnsafePointer<Float>?, outChannels k: Int,
                                                     grid: TileGrid, batch: Int, chunkTiles: Int,
                                                     weightGrad dw: UnsafeMutablePointer<Float>,
                                                     biasGrad db: UnsafeMutablePointer<Float>,
                                                     workspace ws: ConvWorkspace) -> Double {
        let a2 = T.alpha * T.alpha
        let total = batch * grid.perImage
        let parts = ws.parts
        let du = ws.filter
        let sumPoint = T.alpha + 1
        precondition(ws.onesCount >= min(chunkTiles, total))
        var gemm = 0.0
        var first = 0
        while first < total {
            let tc = min(chunkTiles, total - first)
            let v = ws.buffer, dm = ws.buffer + a2 * tc * c
            parallelRanges(tc, parts: parts) { range, slot in
                let s = ws.slots[slot]
                for tl in range {
                    inputTile(kind, x: x, channels: c, grid: grid, tile: first + tl, local: tl, chunk: tc,
                              into: v, scratch: s, zeros: ws.zeros)
                    gradientTile(kind, dy: dy, y: y, channels: k, grid: grid, tile: first + tl, local: tl, chunk: tc,
                                 into: dm, scratch: s, zeros: ws.zeros, positives: ws.positives)
                }
            }
            let g0 = Clock.now()
            parallelRanges(a2, parts: parts) { points, _ in
                for p in points {
                    // dU_p[C, K] (+)= V_p^T[C, T] · dM_p[T, K]
                    BLAS.sgemm(transA: true, m: c, n: k, k: tc, a: v + p * tc * c, lda: c, b: dm + p * tc * k, ldb: k,
                               beta: first == 0 ? 0 : 1, c: du + p * c * k, ldc: k)
                }
            }
            // db[K] (+)= dM_(1,1)^T[K, T] · 1[T]
            BLAS.sgemv(transA: true, m: tc, n: k, a: dm + sumPoint * tc * k, lda: k, x: ws.ones,
                       beta: first == 0 ? 0 : 1, y: db)
            gemm += Clock.now() - g0
            first += tc
        }
        filterGradient(kind, du: du, c: c, k: k, into: dw, workspace: ws)
        return gemm
    }
}
