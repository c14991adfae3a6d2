# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# milesial/Pytorch-UNet: unet_parts.py (DoubleConv with bias-free convs, BatchNorm2d and
# ReLU(inplace=True); Down; Up with bilinear Upsample(align_corners=True) or ConvTranspose2d and
# F.pad to the skip's size; OutConv), unet_model.py (with use_checkpointing through
# torch.utils.checkpoint.checkpoint), utils/dice_score.py, evaluate.py (an inference_mode-decorated
# evaluation with one_hot(...).permute) and train.py's step (channels_last inputs and model,
# autocast(enabled=False), a disabled GradScaler, CrossEntropyLoss + dice loss, RMSprop with
# momentum and foreach=True, clip_grad_norm_, ReduceLROnPlateau('max')). Tiny images.


class DoubleConv(nn.Module):
    """(convolution => [BN] => ReLU) * 2"""

    def __init__(self, in_channels, out_channels, mid_channels=None):
        super().__init__()
        if not mid_channels:
            mid_channels = out_channels
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True)
        )

    def forward(self, x):
        return self.double_conv(x)


class Down(nn.Module):
    """Downscaling with maxpool then double conv"""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.maxpool_conv = nn.Sequential(
            nn.MaxPool2d(2),
            DoubleConv(in_channels, out_channels)
        )

    def forward(self, x):
        return self.maxpool_conv(x)


class Up(nn.Module):
    """Upscaling then double conv"""

    def __init__(self, in_channels, out_channels, bilinear=True):
        super().__init__()

        # if bilinear, use the normal convolutions to reduce the number of channels
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode='bilinear', align_corners=True)
            self.conv = DoubleConv(in_channels, out_channels, in_channels // 2)
        else:
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
            self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x1, x2):
        x1 = self.up(x1)
        # input is CHW
        diffY = x2.size()[2] - x1.size()[2]
        diffX = x2.size()[3] - x1.size()[3]

        x1 = F.pad(x1, [diffX // 2, diffX - diffX // 2,
                        diffY // 2, diffY - diffY // 2])
        # if you have padding issues, see
        # https://github.com/HaiyongJiang/U-Net-Pytorch-Unstructured-Buggy/commit/0e854509c2cea854e247a9c615f175f76fbb2e3a
        # https://github.com/xiaopeng-liao/Pytorch-UNet/commit/8ebac70e633bac59fc22bb5195e513d5832fb3bd
        x = torch.cat([x2, x1], dim=1)
        return self.conv(x)


class OutConv(nn.Module):
    def __init__(self, in_channels, out_channels):
        super(OutConv, self).__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x):
        return self.conv(x)


class UNet(nn.Module):
    def __init__(self, n_channels, n_classes, bilinear=False, base=4):
        super(UNet, self).__init__()
        self.n_channels = n_channels
        self.n_classes = n_classes
        self.bilinear = bilinear

        self.inc = (DoubleConv(n_channels, base))
        self.down1 = (Down(base, base * 2))
        self.down2 = (Down(base * 2, base * 4))
        factor = 2 if bilinear else 1
        self.down3 = (Down(base * 4, base * 8 // factor))
        self.up1 = (Up(base * 8, base * 4 // factor, bilinear))
        self.up2 = (Up(base * 4, base * 2 // factor, bilinear))
        self.up3 = (Up(base * 2, base, bilinear))
        self.outc = (OutConv(base, n_classes))

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x = self.up1(x4, x3)
        x = self.up2(x, x2)
        x = self.up3(x, x1)
        logits = self.outc(x)
        return logits

    def use_checkpointing(self):
        # the repository writes torch.utils.checkpoint(self.inc), which calls the module (a
        # TypeError in PyTorch too); the wrapper below is what it means
        self.inc = Checkpointed(self.inc)
        self.down1 = Checkpointed(self.down1)
        self.down2 = Checkpointed(self.down2)
        self.down3 = Checkpointed(self.down3)
        self.up1 = Checkpointed(self.up1)
        self.up2 = Checkpointed(self.up2)
        self.up3 = Checkpointed(self.up3)
        self.outc = Checkpointed(self.outc)


class Checkpointed(nn.Module):
    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, *args):
        return torch.utils.checkpoint.checkpoint(self.module, *args, use_reentrant=False)


def dice_coeff(input, target, reduce_batch_first: bool = False, epsilon: float = 1e-6):
    # Average of Dice coefficient for all batches, or for a single mask
    assert input.size() == target.size()
    assert input.dim() == 3 or not reduce_batch_first

    sum_dim = (-1, -2) if input.dim() == 2 or not reduce_batch_first else (-1, -2, -3)

    inter = 2 * (input * target).sum(dim=sum_dim)
    sets_sum = input.sum(dim=sum_dim) + target.sum(dim=sum_dim)
    sets_sum = torch.where(sets_sum == 0, inter, sets_sum)

    dice = (inter + epsilon) / (sets_sum + epsilon)
    return dice.mean()


def multiclass_dice_coeff(input, target, reduce_batch_first: bool = False, epsilon: float = 1e-6):
    # Average of Dice coefficient for all classes
    return dice_coeff(input.flatten(0, 1), target.flatten(0, 1), reduce_batch_first, epsilon)


def dice_loss(input, target, multiclass: bool = False):
    # Dice loss (objective to minimize) between 0 and 1
    fn = multiclass_dice_coeff if multiclass else dice_coeff
    return 1 - fn(input, target, reduce_batch_first=True)


@torch.inference_mode()
def evaluate(net, dataloader, device, amp):
    net.eval()
    num_val_batches = len(dataloader)
    dice_score = 0

    # iterate over the validation set
    with torch.autocast(device.type if device.type != 'mps' else 'cpu', enabled=amp):
        for batch in dataloader:
            image, mask_true = batch['image'], batch['mask']

            # move images and labels to correct device and type
            image = image.to(device=device, dtype=torch.float32, memory_format=torch.channels_last)
            mask_true = mask_true.to(device=device, dtype=torch.long)

            # predict the mask
            mask_pred = net(image)

            if net.n_classes == 1:
                assert mask_true.min() >= 0 and mask_true.max() <= 1, 'True mask indices should be in [0, 1]'
                mask_pred = (F.sigmoid(mask_pred) > 0.5).float()
                # compute the Dice score
                dice_score += dice_coeff(mask_pred, mask_true, reduce_batch_first=False)
            else:
                assert mask_true.min() >= 0 and mask_true.max() < net.n_classes, 'True mask indices should be in [0, n_classes['
                # convert to one-hot format
                mask_true = F.one_hot(mask_true, net.n_classes).permute(0, 3, 1, 2).float()
                mask_pred = F.one_hot(mask_pred.argmax(dim=1), net.n_classes).permute(0, 3, 1, 2).float()
                # compute the Dice score, ignoring background
                dice_score += multiclass_dice_coeff(mask_pred[:, 1:], mask_true[:, 1:], reduce_batch_first=False)

    net.train()
    return dice_score / max(num_val_batches, 1)


class BasicDataset(torch.utils.data.Dataset):
    def __init__(self, images, masks):
        self.images, self.masks = images, masks

    def __len__(self):
        return len(self.images)

    def __getitem__(self, idx):
        return {
            'image': torch.as_tensor(self.images[idx].copy()).float().contiguous(),
            'mask': torch.as_tensor(self.masks[idx].copy()).long().contiguous()
        }


rng = np.random.default_rng(0)
imgs = rng.uniform(0, 1, (6, 3, 16, 16)).astype(np.float32)
masks = (imgs.mean(1) > 0.5).astype(np.int64) + (imgs[:, 0] > 0.8)
dataset = BasicDataset(imgs, masks)
loader_args = dict(batch_size=2, num_workers=0, pin_memory=True)
train_loader = DataLoader(dataset, shuffle=False, **loader_args)
val_loader = DataLoader(dataset, shuffle=False, drop_last=True, **loader_args)
device = torch.device('cpu')


def fill_(model, seed):
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(torch.from_numpy(np.random.default_rng(seed + i).uniform(-0.4, 0.4, tuple(p.shape))
                                     .astype(np.float32)))
    return model


for bilinear in (False, True):
    tag = "bilinear" if bilinear else "transposed"
    torch.manual_seed(0)
    model = fill_(UNet(n_channels=3, n_classes=3, bilinear=bilinear), 0)
    model = model.to(memory_format=torch.channels_last)
    model.to(device=device)
    learning_rate, weight_decay, momentum, gradient_clipping, amp = 1e-3, 1e-8, 0.999, 1.0, False
    optimizer = optim.RMSprop(model.parameters(),
                              lr=learning_rate, weight_decay=weight_decay, momentum=momentum, foreach=True)
    scheduler = optim.lr_scheduler.ReduceLROnPlateau(optimizer, 'max', patience=5)  # goal: maximize Dice score
    grad_scaler = torch.cuda.amp.GradScaler(enabled=amp)
    criterion = nn.CrossEntropyLoss() if model.n_classes > 1 else nn.BCEWithLogitsLoss()
    log = []
    for epoch in range(1, 3):
        model.train()
        epoch_loss = 0
        for batch in train_loader:
            images, true_masks = batch['image'], batch['mask']

            assert images.shape[1] == model.n_channels, \
                f'Network has been defined with {model.n_channels} input channels, ' \
                f'but loaded images have {images.shape[1]} channels. Please check that ' \
                'the images are loaded correctly.'

            images = images.to(device=device, dtype=torch.float32, memory_format=torch.channels_last)
            true_masks = true_masks.to(device=device, dtype=torch.long)

            with torch.autocast(device.type if device.type != 'mps' else 'cpu', enabled=amp):
                masks_pred = model(images)
                if model.n_classes == 1:
                    loss = criterion(masks_pred.squeeze(1), true_masks.float())
                    loss += dice_loss(F.sigmoid(masks_pred.squeeze(1)), true_masks.float(), multiclass=False)
                else:
                    loss = criterion(masks_pred, true_masks)
                    loss += dice_loss(
                        F.softmax(masks_pred, dim=1).float(),
                        F.one_hot(true_masks, model.n_classes).permute(0, 3, 1, 2).float(),
                        multiclass=True
                    )

            optimizer.zero_grad(set_to_none=True)
            grad_scaler.scale(loss).backward()
            grad_scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), gradient_clipping)
            grad_scaler.step(optimizer)
            grad_scaler.update()

            epoch_loss += loss.item()
        val_score = evaluate(model, val_loader, device, amp)
        scheduler.step(val_score)
        log.append([epoch_loss, float(val_score), optimizer.param_groups[0]['lr']])
    out[f"{tag}_log"] = log
    out[f"{tag}_running_mean"] = model.inc.double_conv[1].running_mean
    with torch.no_grad():
        out[f"{tag}_logits"] = model.eval()(torch.from_numpy(imgs[:1]))[0, :, :2, :2]

# checkpointing wraps each part; outputs and gradients are unchanged
torch.manual_seed(0)
model = fill_(UNet(n_channels=3, n_classes=2, bilinear=True), 7)
x = torch.from_numpy(imgs[:2, :, :15, :13].copy())  # odd sizes: Up pads the upsampled map
y = model(x)
y.square().mean().backward()
plain = [y, model.inc.double_conv[0].weight.grad]
model.zero_grad()
model.use_checkpointing()
y = model(x)
y.square().mean().backward()
out["checkpointing_same"] = [bool(torch.allclose(y, plain[0])),
                             bool(torch.allclose(model.inc.module.double_conv[0].weight.grad, plain[1]))]
out["odd_size_out"] = list(y.shape)
