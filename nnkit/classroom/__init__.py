"""The Classroom: the computation behind the ten teaching demos, as pure, tested functions.

The dashboard's Classroom pages only draw what these return (numpy arrays and dataclasses); nothing here
imports Streamlit or prints. One module per demo:

1. ``neuron``       McCulloch-Pitts threshold units: ``truth_table(GATES["AND"])``
2. ``perceptron``   the perceptron rule (``perceptron_steps``, ``train_perceptron``) and a sigmoid
                    network that solves XOR (``xor_network`` yields the decision surface as it learns)
3. ``backprop``     one backpropagation step with every forward value, delta, gradient and update
                    (``backprop_step(...).table()``), checked against torch autograd in the tests
4. ``activations``  activation functions and derivatives (``activation_curves``); per-layer gradient
                    norms of deep sigmoid / ReLU / batch-norm nets (``vanishing_gradients``)
5. ``convolution``  ``convolve`` with stride and padding, ``output_size``, ``max_pool``,
                    ``feature_maps`` of a trained nnkit cnn
6. ``tricks``       side-by-side short trainings: dropout, batch norm, augmentation, learning rate,
                    momentum, early stopping (``compare_tricks``)
7. ``residual``     first-layer gradient norm against depth, plain vs residual (``depth_sweep``)
8. ``autoencoder``  undercomplete and denoising autoencoders, convolutional by default
                    (``train_autoencoder``, ``reconstruct``)
9. ``gan``          the GAN minimax game on a 1-D / 2-D toy distribution (``gan_steps``)
10. ``brittleness`` one pixel that flips a digit (``find_one_pixel_flip`` via ``attacks.OnePixel``;
                    ``one_pixel_search`` exhaustive) and the tag-moved test
                    of a confounded model with saliency maps (``tag_moved_test``); the robustness
                    trade-off of adversarial training (``tradeoff_configs``, ``robust_accuracy_curve``)

Submodules are imported on use (``from nnkit.classroom import gan``), so a page pays only for its own.
"""

__all__ = ["activations", "autoencoder", "backprop", "brittleness", "convolution", "gan", "neuron", "perceptron",
           "residual", "tricks"]
