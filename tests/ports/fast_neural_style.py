# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# pytorch/examples fast_neural_style: transformer_net.py's TransformerNet (ReflectionPad2d convs,
# InstanceNorm2d(affine=True), residual blocks, nearest-neighbour upsampling by F.interpolate),
# utils.py's gram_matrix and normalize_batch, and neural_style.py's training step (content loss on
# one feature map, style loss on Gram matrices, Adam), with a small VGG-like feature extractor in
# place of torchvision's pretrained VGG16 and channels 32/64/128 shrunk to 8/16/16; in float64.
rng = np.random.default_rng(11)


class ConvLayer(torch.nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride):
        super(ConvLayer, self).__init__()
        reflection_padding = kernel_size // 2
        self.reflection_pad = torch.nn.ReflectionPad2d(reflection_padding)
        self.conv2d = torch.nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x):
        out = self.reflection_pad(x)
        out = self.conv2d(out)
        return out


class ResidualBlock(torch.nn.Module):
    def __init__(self, channels):
        super(ResidualBlock, self).__init__()
        self.conv1 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in1 = torch.nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in2 = torch.nn.InstanceNorm2d(channels, affine=True)
        self.relu = torch.nn.ReLU()

    def forward(self, x):
        residual = x
        out = self.relu(self.in1(self.conv1(x)))
        out = self.in2(self.conv2(out))
        out = out + residual
        return out


class UpsampleConvLayer(torch.nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride, upsample=None):
        super(UpsampleConvLayer, self).__init__()
        self.upsample = upsample
        reflection_padding = kernel_size // 2
        self.reflection_pad = torch.nn.ReflectionPad2d(reflection_padding)
        self.conv2d = torch.nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x):
        x_in = x
        if self.upsample:
            x_in = torch.nn.functional.interpolate(x_in, mode='nearest', scale_factor=self.upsample)
        out = self.reflection_pad(x_in)
        out = self.conv2d(out)
        return out


class TransformerNet(torch.nn.Module):
    def __init__(self):
        super(TransformerNet, self).__init__()
        self.conv1 = ConvLayer(3, 8, kernel_size=9, stride=1)
        self.in1 = torch.nn.InstanceNorm2d(8, affine=True)
        self.conv2 = ConvLayer(8, 16, kernel_size=3, stride=2)
        self.in2 = torch.nn.InstanceNorm2d(16, affine=True)
        self.conv3 = ConvLayer(16, 16, kernel_size=3, stride=2)
        self.in3 = torch.nn.InstanceNorm2d(16, affine=True)
        self.res1 = ResidualBlock(16)
        self.res2 = ResidualBlock(16)
        self.deconv1 = UpsampleConvLayer(16, 16, kernel_size=3, stride=1, upsample=2)
        self.in4 = torch.nn.InstanceNorm2d(16, affine=True)
        self.deconv2 = UpsampleConvLayer(16, 8, kernel_size=3, stride=1, upsample=2)
        self.in5 = torch.nn.InstanceNorm2d(8, affine=True)
        self.deconv3 = ConvLayer(8, 3, kernel_size=9, stride=1)
        self.relu = torch.nn.ReLU()

    def forward(self, X):
        y = self.relu(self.in1(self.conv1(X)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        y = self.res1(y)
        y = self.res2(y)
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        y = self.deconv3(y)
        return y


class Features(torch.nn.Module):
    """Two VGG-style slices standing in for the pretrained Vgg16 of vgg.py."""
    def __init__(self):
        super(Features, self).__init__()
        self.slice1 = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(inplace=True))
        self.slice2 = torch.nn.Sequential(torch.nn.MaxPool2d(kernel_size=2, stride=2),
                                          torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(inplace=True))
        for param in self.parameters():
            param.requires_grad = False

    def forward(self, X):
        h1 = self.slice1(X)
        h2 = self.slice2(h1)
        return [h1, h2]


def gram_matrix(y):
    (b, ch, h, w) = y.size()
    features = y.view(b, ch, w * h)
    features_t = features.transpose(1, 2)
    gram = features.bmm(features_t) / (ch * h * w)
    return gram


def normalize_batch(batch):
    # normalize using imagenet mean and std
    mean = batch.new_tensor([0.485, 0.456, 0.406]).view(-1, 1, 1)
    std = batch.new_tensor([0.229, 0.224, 0.225]).view(-1, 1, 1)
    batch = batch.div_(255.0)
    return (batch - mean) / std


transformer = TransformerNet().double()  # float64: Adam's steps on near-zero gradients amplify float32 rounding
vgg = Features().double()
with torch.no_grad():
    for i, p in enumerate(list(transformer.parameters()) + list(vgg.parameters())):
        p.copy_(torch.from_numpy(np.random.default_rng(200 + i).normal(0, 0.2, tuple(p.shape)).astype(np.float64)))
optimizer = optim.Adam(transformer.parameters(), 1e-3)
mse_loss = torch.nn.MSELoss()
content_weight, style_weight = 1e5, 1e10

style = torch.from_numpy(rng.uniform(0, 255, (1, 3, 16, 16)).astype(np.float64))
style = style.repeat(2, 1, 1, 1)
features_style = vgg(normalize_batch(style))
gram_style = [gram_matrix(y) for y in features_style]
out["gram_style"] = [g.clone() for g in gram_style]

images = torch.from_numpy(rng.uniform(0, 255, (4, 3, 16, 16)).astype(np.float64))
train_loader = DataLoader(TensorDataset(images), batch_size=2, shuffle=False)
losses = []
transformer.train()
for epoch in range(1):
    for batch_id, (x,) in enumerate(train_loader):
        n_batch = len(x)
        optimizer.zero_grad()

        y = transformer(x)

        y = normalize_batch(y)
        x = normalize_batch(x)

        features_y = vgg(y)
        features_x = vgg(x)

        content_loss = content_weight * mse_loss(features_y[1], features_x[1])

        style_loss = 0.
        for ft_y, gm_s in zip(features_y, gram_style):
            gm_y = gram_matrix(ft_y)
            style_loss += mse_loss(gm_y, gm_s[:n_batch, :, :])
        style_loss *= style_weight

        total_loss = content_loss + style_loss
        total_loss.backward()
        if epoch == 0 and batch_id == 0:
            # Gradients of the first step. A conv bias followed by InstanceNorm (and the residual
            # blocks' last IN bias, which feeds the next block's IN) has an exact gradient of 0, so
            # both frameworks return rounding noise there, and Adam turns noise into full steps:
            # the trained weights are compared through the losses instead.
            out["first_grads"] = {n: p.grad.detach().clone() for n, p in transformer.named_parameters()
                                  if not n.endswith("conv2d.bias") and not n.endswith("in2.bias")}
        optimizer.step()
        losses.append([content_loss.item(), style_loss.item()])

out["losses"] = np.array(losses) / np.array(losses[0])  # relative: the absolute losses are ~1e9
out["stylized_shape"] = list(transformer(images[:1]).shape)
out["state_keys"] = sorted(transformer.state_dict().keys())
