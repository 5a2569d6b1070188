/// Synthetic images and labels, defined by global sample index.
///
/// Sample `i` of step `t` has a label drawn from (seed, t, i) and an image
/// that is its class's prototype plus noise, both uniform with standard
/// deviation 0.1 per pixel (the notebook draws N(0, 0.1²) images). The
/// prototype makes the task learnable, so that training can be checked to
/// learn; the noise makes every sample different. With `datasetSize` set,
/// the step's samples cycle through a fixed set of that many samples instead.
public struct SyntheticData: Sendable {
    public var seed: UInt64
    public var classes: Int
    public var imageSize: Int
    public var datasetSize: Int?

    public init(seed: UInt64, classes: Int, imageSize: Int, datasetSize: Int? = nil) {
        self.seed = seed
        self.classes = classes
        self.imageSize = imageSize
        self.datasetSize = datasetSize
    }

    public var pixelsPerImage: Int { imageSize * imageSize * 3 }

    /// Identity of sample `i` of step `t` in a global batch of `globalBatch`.
    @inline(__always)
    func identity(step: Int, sample: Int, globalBatch: Int) -> (UInt64, UInt64) {
        if let size = datasetSize {
            return (0, UInt64((step * globalBatch + sample) % size))
        }
        return (UInt64(step), UInt64(sample))
    }

    public func label(step: Int, sample: Int, globalBatch: Int) -> Int32 {
        let (t, i) = identity(step: step, sample: sample, globalBatch: globalBatch)
        let k = CounterRandom.key(seed, RandomStream.label.rawValue, t, i)
        return Int32(truncatingIfNeeded: CounterRandom.bits(k, 0) % UInt64(classes))
    }

    /// Fills `images` (NHWC, `count` images) and `labels` with samples
    /// `first ..< first + count` of step `step`.
    public func fill(images: UnsafeMutablePointer<Float>, labels: UnsafeMutablePointer<Int32>,
                     step: Int, first: Int, count: Int, globalBatch: Int) {
        let amplitude: Float = 0.1 * 1.732_050_8 // uniform on [-a, a] has sd a/√3
        let pixels = pixelsPerImage
        for j in 0..<count {
            let (t, i) = identity(step: step, sample: first + j, globalBatch: globalBatch)
            let label = label(step: step, sample: first + j, globalBatch: globalBatch)
            labels[j] = label
            let proto = CounterRandom.key(seed, RandomStream.prototype.rawValue, UInt64(label))
            let noise = CounterRandom.key(seed, RandomStream.noise.rawValue, t, i)
            let out = images + j * pixels
            for p in 0..<pixels {
                out[p] = amplitude * (CounterRandom.symmetric(proto, p) + CounterRandom.symmetric(noise, p))
            }
        }
    }
}
