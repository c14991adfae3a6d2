# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# Part 1: the "Spatial Transformer Networks" tutorial: a localisation net whose last Linear is
# zeroed and its bias set to the identity through .data, F.affine_grid + F.grid_sample, Dropout2d
# and F.dropout(training=), SGD on nll_loss; dropout is switched off for the compared run.
# Part 2: the "Neural Transfer Using PyTorch" tutorial: ContentLoss / StyleLoss modules that stash
# their loss, gram_matrix, a Normalization module, a new nn.Sequential assembled by walking
# cnn.children() with add_module and ReLU(inplace=False) swaps, trimming by slicing the Sequential,
# model.eval().requires_grad_(False), and LBFGS on the image with clamp_ under no_grad in the closure.
import copy

# ---------------------------------------------------------------- spatial transformer
class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 4, kernel_size=5)
        self.conv2 = nn.Conv2d(4, 8, kernel_size=5)
        self.conv2_drop = nn.Dropout2d()
        self.fc1 = nn.Linear(8 * 3 * 3, 16)
        self.fc2 = nn.Linear(16, 10)

        # Spatial transformer localization-network
        self.localization = nn.Sequential(
            nn.Conv2d(1, 4, kernel_size=7),
            nn.MaxPool2d(2, stride=2),
            nn.ReLU(True),
            nn.Conv2d(4, 6, kernel_size=5),
            nn.MaxPool2d(2, stride=2),
            nn.ReLU(True)
        )

        # Regressor for the 3 * 2 affine matrix
        self.fc_loc = nn.Sequential(
            nn.Linear(6 * 2 * 2, 32),
            nn.ReLU(True),
            nn.Linear(32, 3 * 2)
        )

        # Initialize the weights/bias with identity transformation
        self.fc_loc[2].weight.data.zero_()
        self.fc_loc[2].bias.data.copy_(torch.tensor([1, 0, 0, 0, 1, 0], dtype=torch.float))

    # Spatial transformer network forward function
    def stn(self, x):
        xs = self.localization(x)
        xs = xs.view(-1, 6 * 2 * 2)
        theta = self.fc_loc(xs)
        theta = theta.view(-1, 2, 3)

        grid = F.affine_grid(theta, x.size())
        x = F.grid_sample(x, grid)

        return x

    def forward(self, x):
        # transform the input
        x = self.stn(x)

        # Perform the usual forward pass
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
        x = x.view(-1, 8 * 3 * 3)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, training=self.training and self.use_dropout)
        x = self.fc2(x)
        return F.log_softmax(x, dim=1)


rng = np.random.default_rng(0)
images = torch.from_numpy(rng.uniform(0, 1, (8, 1, 24, 24)).astype(np.float32))
targets = torch.from_numpy(rng.integers(0, 10, 8))
torch.manual_seed(0)
model = Net()
identity = [model.fc_loc[2].bias.tolist(), float(model.fc_loc[2].weight.abs().sum())]
with torch.no_grad():
    for i, p in enumerate(model.parameters()):
        p.copy_(torch.from_numpy(np.random.default_rng(i).uniform(-0.2, 0.2, tuple(p.shape)).astype(np.float32)))
model.fc_loc[2].weight.data.mul_(0.1)
model.fc_loc[2].bias.data.copy_(torch.tensor([1, 0.1, 0, -0.1, 0.9, 0.05], dtype=torch.float))
model.use_dropout = False
model.conv2_drop.p = 0.0
optimizer = optim.SGD(model.parameters(), lr=0.01)
log = []
model.train()
for epoch in range(3):
    optimizer.zero_grad()
    output = model(images)
    loss = F.nll_loss(output, targets)
    loss.backward()
    optimizer.step()
    log.append(loss.item())
out["stn_identity_init"] = identity
out["stn_log"] = log
with torch.no_grad():
    model.eval()
    out["stn_transformed"] = model.stn(images[:2])[:, 0, 10:14, 10:14]
theta = torch.tensor([[[0.8, -0.3, 0.1], [0.2, 1.1, -0.2]]], dtype=torch.float64, requires_grad=True)
x = torch.from_numpy(rng.standard_normal((1, 2, 5, 6)))
for align in (False, True):
    for mode, pad in (("bilinear", "zeros"), ("nearest", "border"), ("bilinear", "reflection")):
        grid = F.affine_grid(theta, (1, 2, 4, 3), align_corners=align)
        y = F.grid_sample(x, grid, mode=mode, padding_mode=pad, align_corners=align)
        g, = torch.autograd.grad(y.square().sum(), theta)
        out[f"grid_sample_{mode}_{pad}_{align}"] = [y, g]

# ---------------------------------------------------------------- neural style transfer
class ContentLoss(nn.Module):

    def __init__(self, target,):
        super(ContentLoss, self).__init__()
        # we 'detach' the target content from the tree used
        # to dynamically compute the gradient: this is a stated value,
        # not a variable. Otherwise the forward method of the criterion
        # will throw an error.
        self.target = target.detach()

    def forward(self, input):
        self.loss = F.mse_loss(input, self.target)
        return input


def gram_matrix(input):
    a, b, c, d = input.size()  # a=batch size(=1)
    # b=number of feature maps
    # (c,d)=dimensions of a f. map (N=c*d)

    features = input.view(a * b, c * d)  # resize F_XL into \hat F_XL

    G = torch.mm(features, features.t())  # compute the gram product

    # we 'normalize' the values of the gram matrix
    # by dividing by the number of element in each feature maps.
    return G.div(a * b * c * d)


class StyleLoss(nn.Module):

    def __init__(self, target_feature):
        super(StyleLoss, self).__init__()
        self.target = gram_matrix(target_feature).detach()

    def forward(self, input):
        G = gram_matrix(input)
        self.loss = F.mse_loss(G, self.target)
        return input


# float64 throughout, so that LBFGS's steps agree to the last digits in both frameworks
cnn_normalization_mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64)
cnn_normalization_std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64)


# create a module to normalize input image so we can easily put it in a
# ``nn.Sequential``
class Normalization(nn.Module):
    def __init__(self, mean, std):
        super(Normalization, self).__init__()
        # .view the mean and std to make them [C x 1 x 1] so that they can
        # directly work with image Tensor of shape [B x C x H x W].
        # B is batch size. C is number of channels. H is height and W is width.
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def forward(self, img):
        # normalize ``img``
        return (img - self.mean) / self.std


# desired depth layers to compute style/content losses :
content_layers_default = ['conv_4']
style_layers_default = ['conv_1', 'conv_2', 'conv_3', 'conv_4', 'conv_5']


def get_style_model_and_losses(cnn, normalization_mean, normalization_std,
                               style_img, content_img,
                               content_layers=content_layers_default,
                               style_layers=style_layers_default):
    # normalization module
    normalization = Normalization(normalization_mean, normalization_std)

    # just in order to have an iterable access to or list of content/style
    # losses
    content_losses = []
    style_losses = []

    # assuming that ``cnn`` is a ``nn.Sequential``, so we make a new ``nn.Sequential``
    # to put in modules that are supposed to be activated sequentially
    model = nn.Sequential(normalization)

    i = 0  # increment every time we see a conv
    for layer in cnn.children():
        if isinstance(layer, nn.Conv2d):
            i += 1
            name = 'conv_{}'.format(i)
        elif isinstance(layer, nn.ReLU):
            name = 'relu_{}'.format(i)
            # The in-place version doesn't play very nicely with the ``ContentLoss``
            # and ``StyleLoss`` we insert below. So we replace with out-of-place
            # ones here.
            layer = nn.ReLU(inplace=False)
        elif isinstance(layer, nn.MaxPool2d):
            name = 'pool_{}'.format(i)
        elif isinstance(layer, nn.BatchNorm2d):
            name = 'bn_{}'.format(i)
        else:
            raise RuntimeError('Unrecognized layer: {}'.format(layer.__class__.__name__))

        model.add_module(name, layer)

        if name in content_layers:
            # add content loss:
            target = model(content_img).detach()
            content_loss = ContentLoss(target)
            model.add_module("content_loss_{}".format(i), content_loss)
            content_losses.append(content_loss)

        if name in style_layers:
            # add style loss:
            target_feature = model(style_img).detach()
            style_loss = StyleLoss(target_feature)
            model.add_module("style_loss_{}".format(i), style_loss)
            style_losses.append(style_loss)

    # now we trim off the layers after the last content and style losses
    for i in range(len(model) - 1, -1, -1):
        if isinstance(model[i], ContentLoss) or isinstance(model[i], StyleLoss):
            break

    model = model[:(i + 1)]

    return model, style_losses, content_losses


def get_input_optimizer(input_img):
    # this line to show that input is a parameter that requires a gradient
    optimizer = optim.LBFGS([input_img])
    return optimizer


def run_style_transfer(cnn, normalization_mean, normalization_std,
                       content_img, style_img, input_img, num_steps=300,
                       style_weight=1000000, content_weight=1):
    """Run the style transfer."""
    model, style_losses, content_losses = get_style_model_and_losses(cnn,
        normalization_mean, normalization_std, style_img, content_img)

    # We want to optimize the input and not the model parameters so we
    # update all the requires_grad fields accordingly
    input_img.requires_grad_(True)
    # We also put the model in evaluation mode, so that specific layers
    # such as dropout or batch normalization layers behave correctly.
    model.eval()
    model.requires_grad_(False)

    optimizer = get_input_optimizer(input_img)

    run = [0]
    scores = []
    while run[0] <= num_steps:

        def closure():
            # correct the values of updated input image
            with torch.no_grad():
                input_img.clamp_(0, 1)

            optimizer.zero_grad()
            model(input_img)
            style_score = 0
            content_score = 0

            for sl in style_losses:
                style_score += sl.loss
            for cl in content_losses:
                content_score += cl.loss

            style_score *= style_weight
            content_score *= content_weight

            loss = style_score + content_score
            loss.backward()

            run[0] += 1
            scores.append([style_score.item(), content_score.item()])

            return style_score + content_score

        optimizer.step(closure)

    # a last correction...
    with torch.no_grad():
        input_img.clamp_(0, 1)

    return input_img, model, scores


cnn = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(4, 4, 3, padding=1),
                    nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6),
                    nn.ReLU(inplace=True), nn.Conv2d(6, 6, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                    nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, padding=1))
with torch.no_grad():
    for i, p in enumerate(cnn.parameters()):
        p.copy_(torch.from_numpy(np.random.default_rng(50 + i).uniform(-0.3, 0.3, tuple(p.shape)).astype(np.float32)))
cnn = cnn.double().eval()
style_img = torch.from_numpy(rng.uniform(0, 1, (1, 3, 16, 16)))
content_img = torch.from_numpy(rng.uniform(0, 1, (1, 3, 16, 16)))
input_img = content_img.clone()
output, style_model, scores = run_style_transfer(cnn, cnn_normalization_mean, cnn_normalization_std, content_img,
                                                 style_img, input_img, num_steps=6, style_weight=1000)
out["style_scores"] = scores
out["style_output"] = output[0, :, :3, :3]
out["style_model"] = [type(m).__name__ for m in style_model]
out["style_model_names"] = [n for n, _ in style_model.named_children()]
out["style_model_frozen"] = [p.requires_grad for p in style_model.parameters()][:2]
out["cnn_deepcopy_same"] = bool(torch.equal(copy.deepcopy(cnn)(content_img), cnn(content_img)))
