#!/usr/bin/env python3
"""The notebook's VGG-16 benchmark, ported to TensorFlow 2 through tf.compat.v1:
the same graph (conv_op, fc_op, mpool_op, inference_op), the same objective
(tf.gradients of tf.nn.l2_loss(fc8) with respect to every weight and bias)
and the same timing loop and printed lines. Only what TF 2 removed is
replaced: tf.contrib's xavier_initializer_conv2d by glorot_uniform (the same
distribution: uniform, fan-average), keep_prob by rate = 1 - keep_prob.

  .venv-baselines/bin/python scripts/baselines/tf_vgg16.py --mode forward-backward \\
      --batch-size 16 --threads 1 --burn-in 1 --steps 3 --report runs/tf-fb16.json

Threads: intra_op_parallelism_threads = --threads, inter_op_parallelism_threads
= 1, and OMP/MKL/TF_NUM_* set to match before TensorFlow is imported.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

p = common.parser("VGG-16 'Forward' and 'Forward-backward' timing in TensorFlow (tf.compat.v1), as the notebook.")
p.add_argument("--no-fetch", action="store_true",
               help="forward-backward: compute the gradients without copying them to Python (the notebook copies them)")
args = common.parse_arguments(p)
common.set_thread_environment(args.threads)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
# oneDNN on unless the environment says otherwise: TensorFlow turns it on by
# default only on some Intel CPUs, and it is the faster path on the others
# (docs/COMPARE.md). kernels() records which it was and where it came from.
ONEDNN_FROM_ENVIRONMENT = "TF_ENABLE_ONEDNN_OPTS" in os.environ
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import tensorflow as tf  # noqa: E402

v1 = tf.compat.v1
v1.disable_eager_execution()


def conv_op(input_op, name, kh, kw, n_out, dh, dw, p):
    """3×3 SAME convolution, bias_add, ReLU; Xavier (Glorot uniform) weights, zero biases."""
    n_in = input_op.get_shape()[-1]
    with tf.name_scope(name) as scope:
        kernel = v1.get_variable(scope + "w", shape=[kh, kw, n_in, n_out], dtype=tf.float32,
                                 initializer=v1.glorot_uniform_initializer())
        biases = tf.Variable(tf.constant(0.0, shape=[n_out], dtype=tf.float32), trainable=True, name="b")
        conv = tf.nn.conv2d(input=input_op, filters=kernel, strides=[1, dh, dw, 1], padding="SAME")
        z = tf.nn.bias_add(conv, biases)
        activation = tf.nn.relu(z, name=scope)
        p += [kernel, biases]
        return activation


def fc_op(input_op, name, n_out, p):
    """tf.nn.relu_layer (matmul + bias + ReLU); Xavier weights, biases 0.1.
    As in the notebook, fc8 goes through relu_layer too."""
    n_in = input_op.get_shape()[-1]
    with tf.name_scope(name) as scope:
        kernel = v1.get_variable(scope + "w", shape=[n_in, n_out], dtype=tf.float32,
                                 initializer=v1.glorot_uniform_initializer())
        biases = tf.Variable(tf.constant(0.1, shape=[n_out], dtype=tf.float32), name="b")
        activation = v1.nn.relu_layer(input_op, kernel, biases, name=scope)
        p += [kernel, biases]
        return activation


def mpool_op(input_op, name, kh, kw, dh, dw):
    return v1.nn.max_pool(value=input_op, ksize=[1, kh, kh, 1], strides=[1, dh, dw, 1], padding="SAME", name=name)


def inference_op(input_op, keep_prob):
    p = []
    conv1_1 = conv_op(input_op, name="conv1_1", kh=3, kw=3, n_out=64, dh=1, dw=1, p=p)
    conv1_2 = conv_op(conv1_1, name="conv1_2", kh=3, kw=3, n_out=64, dh=1, dw=1, p=p)
    pool1 = mpool_op(conv1_2, name="pool1", kh=2, kw=2, dh=2, dw=2)

    conv2_1 = conv_op(pool1, name="conv2_1", kh=3, kw=3, n_out=128, dh=1, dw=1, p=p)
    conv2_2 = conv_op(conv2_1, name="conv2_2", kh=3, kw=3, n_out=128, dh=1, dw=1, p=p)
    pool2 = mpool_op(conv2_2, name="pool2", kh=2, kw=2, dh=2, dw=2)

    conv3_1 = conv_op(pool2, name="conv3_1", kh=3, kw=3, n_out=256, dh=1, dw=1, p=p)
    conv3_2 = conv_op(conv3_1, name="conv3_2", kh=3, kw=3, n_out=256, dh=1, dw=1, p=p)
    conv3_3 = conv_op(conv3_2, name="conv3_3", kh=3, kw=3, n_out=256, dh=1, dw=1, p=p)
    pool3 = mpool_op(conv3_3, name="pool3", kh=2, kw=2, dh=2, dw=2)

    conv4_1 = conv_op(pool3, name="conv4_1", kh=3, kw=3, n_out=512, dh=1, dw=1, p=p)
    conv4_2 = conv_op(conv4_1, name="conv4_2", kh=3, kw=3, n_out=512, dh=1, dw=1, p=p)
    conv4_3 = conv_op(conv4_2, name="conv4_3", kh=3, kw=3, n_out=512, dh=1, dw=1, p=p)
    pool4 = mpool_op(conv4_3, name="pool4", kh=2, kw=2, dh=2, dw=2)

    conv5_1 = conv_op(pool4, name="conv5_1", kh=3, kw=3, n_out=512, dh=1, dw=1, p=p)
    conv5_2 = conv_op(conv5_1, name="conv5_2", kh=3, kw=3, n_out=512, dh=1, dw=1, p=p)
    conv5_3 = conv_op(conv5_2, name="conv5_3", kh=3, kw=3, n_out=512, dh=1, dw=1, p=p)
    pool5 = mpool_op(conv5_3, name="pool5", kh=2, kw=2, dh=2, dw=2)

    shp = pool5.get_shape()
    flattened_shape = shp[1:4].num_elements()
    flatten = tf.reshape(pool5, shape=[-1, flattened_shape], name="flatten")

    fc6 = fc_op(flatten, name="fc6", n_out=4096, p=p)
    fc6_drop = v1.nn.dropout(fc6, rate=1 - keep_prob, name="fc6_drop")
    fc7 = fc_op(fc6_drop, name="fc7", n_out=4096, p=p)
    fc7_drop = v1.nn.dropout(fc7, rate=1 - keep_prob, name="fc7_drop")
    fc8 = fc_op(fc7_drop, name="fc8", n_out=1000, p=p)
    softmax = tf.nn.softmax(fc8)
    predictions = tf.argmax(softmax, axis=1)
    return predictions, softmax, fc8, p


PROBE = """
import tensorflow as tf
x = tf.random.normal([2, 56, 56, 64]); w = tf.random.normal([3, 3, 64, 64])
tf.nn.conv2d(x, w, 1, "SAME").numpy()
"""


def kernels():
    """(blas_core, blas_config): oneDNN and its ISA when TensorFlow uses it
    (TF_ENABLE_ONEDNN_OPTS: 1 unless the environment set it), else Eigen."""
    flag = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    try:
        from tensorflow.python.util import _pywrap_util_port
        onednn = bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        onednn = flag != "0"
    setting = "TF_ENABLE_ONEDNN_OPTS=%s (%s)" % (flag, "from the environment" if ONEDNN_FROM_ENVIRONMENT
                                                  else "tf_vgg16.py's default")
    config = "TensorFlow %s; %s; oneDNN %s" % (tf.__version__, setting, "on" if onednn else "off")
    if not onednn:
        return "Eigen", config + "; Eigen kernels; " + common.openblas_note()
    info = {} if args.no_probe else common.onednn_probe(PROBE, args.threads)
    config += "; %s; intra_op %d, inter_op 1; %s" % (common.onednn_config(info), args.threads, common.openblas_note())
    return common.onednn_core(info), config


def run_benchmark():
    """The notebook's run_benchmark, one mode per call (or both, in its order)."""
    with tf.Graph().as_default():
        v1.set_random_seed(args.seed)
        image_size = 224
        images = tf.Variable(v1.random_normal([args.batch_size, image_size, image_size, 3], dtype=tf.float32,
                                              stddev=0.1))
        keep_prob = v1.placeholder(tf.float32)
        predictions, softmax, fc8, p = inference_op(images, keep_prob)

        config = v1.ConfigProto(intra_op_parallelism_threads=args.threads, inter_op_parallelism_threads=1)
        sess = v1.Session(config=config)
        init = v1.global_variables_initializer()
        sess.run(init)

        modes = ["forward", "forward-backward"] if args.mode == "both" else [args.mode]
        results = {}
        if "forward" in modes:
            results["forward"] = common.time_run(lambda: sess.run(predictions, feed_dict={keep_prob: 1.0}),
                                                 "Forward", args.burn_in, args.steps)
        if "forward-backward" in modes:
            objective = tf.nn.l2_loss(fc8)
            grad = tf.gradients(objective, p)
            # The notebook fetches the gradients (a 553 MB copy into numpy
            # each step); --no-fetch fetches one scalar that depends on all
            # of them instead (tf.group of them was pruned to nothing).
            target = tf.add_n([tf.reduce_sum(g) for g in grad]) if args.no_fetch else grad
            results["forward-backward"] = common.time_run(lambda: sess.run(target, feed_dict={keep_prob: 0.5}),
                                                          "Forward-backward", args.burn_in, args.steps)
        sess.close()
        return results


common.run_baseline(args, "tensorflow", tf.__version__, run_benchmark, kernels)
