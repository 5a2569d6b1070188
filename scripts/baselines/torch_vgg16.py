#!/usr/bin/env python3
"""The notebook's VGG-16 benchmark in PyTorch (torch.nn, no torchvision): the
same network as tf_vgg16.py (3×3 SAME convolutions with bias and ReLU, 2×2
max pooling, FC-4096, FC-4096, FC-1000, each FC with bias and ReLU, dropout
on fc6 and fc7; Xavier uniform weights, conv biases 0, FC biases 0.1), the
same synthetic batch (N(0, 0.1²), fixed for the run, no gradient) and the same
timing loop and printed lines.

  'Forward':          eval mode under torch.no_grad(), argmax of softmax(fc8).
  'Forward-backward': train mode (dropout p = 0.5), the gradient of
                      l2_loss(fc8) = sum(fc8²) / 2 with respect to every weight
                      and bias (torch.autograd.grad: fresh gradients each step,
                      as tf.gradients; nothing accumulates).

  .venv-baselines/bin/python scripts/baselines/torch_vgg16.py --mode forward-backward \\
      --batch-size 16 --threads 1 --burn-in 1 --steps 3 --report runs/torch-fb16.json

Threads: torch.set_num_threads(--threads), torch.set_num_interop_threads(1),
and OMP/MKL set to match before torch is imported.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

p = common.parser("VGG-16 'Forward' and 'Forward-backward' timing in PyTorch, as the notebook.")
p.add_argument("--channels-last", action="store_true",
               help="keep the images and weights in channels-last (NHWC) memory, as TensorFlow and vgg-dp do "
                    "(default: PyTorch's NCHW)")
args = common.parse_arguments(p)
common.set_thread_environment(args.threads)

import torch  # noqa: E402
from torch import nn  # noqa: E402

torch.set_num_threads(args.threads)
torch.set_num_interop_threads(1)


class VGG16(nn.Module):
    """Configuration D, as the notebook's inference_op builds it."""

    def __init__(self, classes=1000):
        super().__init__()
        layers = []
        channels = 3
        for convs, width in common.VGG16_BLOCKS:
            for _ in range(convs):
                conv = nn.Conv2d(channels, width, kernel_size=3, stride=1, padding=1)  # SAME for 3×3, stride 1
                nn.init.xavier_uniform_(conv.weight)
                nn.init.zeros_(conv.bias)
                layers += [conv, nn.ReLU(inplace=True)]
                channels = width
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))  # SAME = VALID for even sizes
        self.features = nn.Sequential(*layers)
        fcs = [nn.Linear(7 * 7 * 512, common.HIDDEN), nn.Linear(common.HIDDEN, common.HIDDEN),
               nn.Linear(common.HIDDEN, classes)]
        for fc in fcs:
            nn.init.xavier_uniform_(fc.weight)
            nn.init.constant_(fc.bias, 0.1)
        # relu_layer on every FC, fc8 included, as the notebook's fc_op.
        self.classifier = nn.Sequential(fcs[0], nn.ReLU(inplace=True), nn.Dropout(0.5),
                                        fcs[1], nn.ReLU(inplace=True), nn.Dropout(0.5),
                                        fcs[2], nn.ReLU(inplace=True))

    def forward(self, x):
        x = self.features(x)
        return self.classifier(torch.flatten(x, 1))


PROBE = """
import torch
torch.nn.functional.conv2d(torch.randn(2, 64, 56, 56), torch.randn(64, 64, 3, 3), padding=1)
"""


def kernels():
    """(blas_core, blas_config): oneDNN (convolutions) and its ISA, MKL (linear layers), ATen's CPU capability."""
    onednn = torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
    capability = torch.backends.cpu.get_cpu_capability()
    shown = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version ([\w.]+)", shown)
    blas = re.search(r"BLAS_INFO=(\w+)", shown)
    info = {} if args.no_probe or not onednn else common.onednn_probe(PROBE, args.threads)
    if onednn:
        core = common.onednn_core(info)
    else:
        core = "ATen %s" % capability
    if blas:
        core += " + %s" % ("MKL" if blas.group(1) == "mkl" else blas.group(1))
    config = "PyTorch %s; oneDNN %s%s; BLAS %s%s; ATen CPU capability %s; threads %d, inter-op 1; memory format %s; %s" % (
        torch.__version__, "on" if onednn else "off",
        ", " + common.onednn_config(info) if onednn else "",
        blas.group(1) if blas else "?", " %s" % mkl.group(1) if mkl else "", capability, args.threads,
        "channels_last (--channels-last)" if args.channels_last else "NCHW (PyTorch's default)",
        common.openblas_note())
    return core, config


def run_benchmark():
    torch.manual_seed(args.seed)
    model = VGG16()
    images = torch.randn(args.batch_size, 3, 224, 224) * 0.1
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    params = [p for p in model.parameters()]
    modes = ["forward", "forward-backward"] if args.mode == "both" else [args.mode]
    results = {}
    if "forward" in modes:
        model.eval()

        def forward():
            with torch.no_grad():
                return torch.argmax(torch.softmax(model(images), dim=1), dim=1)

        results["forward"] = common.time_run(forward, "Forward", args.burn_in, args.steps)
    if "forward-backward" in modes:
        model.train()

        def forward_backward():
            fc8 = model(images)
            objective = 0.5 * torch.sum(fc8 * fc8)  # tf.nn.l2_loss
            return torch.autograd.grad(objective, params)

        results["forward-backward"] = common.time_run(forward_backward, "Forward-backward", args.burn_in, args.steps)
    return results


common.run_baseline(args, "pytorch", torch.__version__, run_benchmark, kernels)
