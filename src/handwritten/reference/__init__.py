"""The course's own correct answers: one home for each, shared by the checks (which put them in place of a
student's earlier answers, so that a mistake is penalised once), the widgets, the instructor demo and
``handwritten.train``. Each module, and each answer's docstring, names the lesson that teaches it.

=================  ======  =====================================================================
module             lesson  what it holds
=================  ======  =====================================================================
``pixels``         01      the tensor drills and the pixel-distance baseline: ``mnist_distance``,
                           ``is_3``, ``validation_accuracy``; ``rgb_to_grey``; k-NN's
                           ``distance_matrix``, ``knn_predict``, ``confusion_matrix``
``sgd``            02      the seven steps: ``apply_step``, ``mnist_loss``, ``batch_accuracy``,
                           ``BasicOptim``, ``train_epoch``, ``validate_epoch``, ``train_model``; gradients
                           by hand: ``quadratic_gradient``, ``finite_difference``, ``mnist_loss_gradient``
``batching``       02, 05  ``TensorBatches``: mini-batches sliced from tensors held in memory
``torch_nn``       03      ``log_softmax``, ``nll``, ``cross_entropy_grad``, ``accuracy``, ``loss_batch``,
                           ``train_epoch``, ``fit``, ``choose_epochs``, ``get_data``, ``train_model``
``convolution``    04      ``corr2d`` and its multi-channel forms, ``pool2d``, ``conv_output_shape``,
                           ``receptive_field``, ``influence``, ``conv_forward`` (a whole layer), ``im2col``
``cnn``            05      ``Lambda``, ``preprocess``, ``WrappedDataLoader``, ``lenet_shapes``,
                           ``layer_shapes``, ``evaluate_accuracy``, ``train_fast``, ``BatchNorm``; the
                           challenge's ``challenge_model``, ``challenge_train``
``inside_cnn``     06      ``split_test_set``, ``rightness``, ``predict_one_by_one``, ``train``,
                           ``shift_image``, ``random_shift``, ``confusion_matrix``, ``most_confused``, ``as_mnist``
``engine``         07      the tiny autograd engine: ``Tensor``, ``backprop``, ``unbroadcast``, its ops
                           (``neg``, ``sub``, ``power``, ``div`` too), ``numerical_gradient``, ``unfold``,
                           ``fold``, ``conv2d``, ``max_pool2d``, ``Module``, ``Linear``, ``MLP``, ``CNN``, ``SGD``,
                           ``fit``
``dtypes``         all     ``as_float``: the answers compute in float32, or wider if an input is
=================  ======  =====================================================================

The course's models (the seeds' networks, the pretrained ConvNet) live in ``handwritten.models``.
"""
