# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# torchvision.models.resnet as written (BasicBlock and Bottleneck with in-place ReLU and `out +=
# identity`, grouped and dilated 3x3 convs, the 7x7 stride-2 stem, max pool, AdaptiveAvgPool2d,
# torch.flatten, kaiming_normal_(mode="fan_out") and zero_init_residual), trained a few steps with
# SGD (momentum, nesterov, weight decay), OneCycleLR and label-smoothed cross-entropy, then
# evaluated under inference_mode, with the same numpy weights in both frameworks, in float64
# (Module.double()): in float32 the two frameworks' roundings grow apart by ~1e-4 through ten
# BatchNorm layers in a few steps, each as far from the float64 result as the other.
import math, copy
from typing import Optional, Callable, List, Type, Union
Tensor = torch.Tensor
def conv3x3(in_planes, out_planes, stride=1, groups=1, dilation=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation, groups=groups, bias=False, dilation=dilation)
def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)
class BasicBlock(nn.Module):
    expansion: int = 1
    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, dilation=1, norm_layer=None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride
    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.conv1(x); out = self.bn1(out); out = self.relu(out)
        out = self.conv2(out); out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out
class Bottleneck(nn.Module):
    expansion: int = 4
    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, dilation=1, norm_layer=None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width); self.bn1 = norm_layer(width)
        self.conv2 = conv3x3(width, width, stride, groups, dilation); self.bn2 = norm_layer(width)
        self.conv3 = conv1x1(width, planes * self.expansion); self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True); self.downsample = downsample; self.stride = stride
    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)
class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=1000, zero_init_residual=False, groups=1, width_per_group=64, replace_stride_with_dilation=None, norm_layer=None):
        super().__init__()
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        self._norm_layer = norm_layer
        self.inplanes = 64; self.dilation = 1
        if replace_stride_with_dilation is None:
            replace_stride_with_dilation = [False, False, False]
        self.groups = groups; self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2, dilate=replace_stride_with_dilation[0])
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2, dilate=replace_stride_with_dilation[1])
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, dilate=replace_stride_with_dilation[2])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1); nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck) and m.bn3.weight is not None:
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock) and m.bn2.weight is not None:
                    nn.init.constant_(m.bn2.weight, 0)
    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        norm_layer = self._norm_layer; downsample = None; previous_dilation = self.dilation
        if dilate:
            self.dilation *= stride; stride = 1
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride), norm_layer(planes * block.expansion))
        layers = []
        layers.append(block(self.inplanes, planes, stride, downsample, self.groups, self.base_width, previous_dilation, norm_layer))
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes, groups=self.groups, base_width=self.base_width, dilation=self.dilation, norm_layer=norm_layer))
        return nn.Sequential(*layers)
    def _forward_impl(self, x):
        x = self.conv1(x); x = self.bn1(x); x = self.relu(x); x = self.maxpool(x)
        x = self.layer1(x); x = self.layer2(x); x = self.layer3(x); x = self.layer4(x)
        x = self.avgpool(x); x = torch.flatten(x, 1); x = self.fc(x)
        return x
    def forward(self, x):
        return self._forward_impl(x)

rng = np.random.default_rng(5)
x = torch.from_numpy(rng.standard_normal((4, 3, 32, 32)))
y = torch.from_numpy(rng.integers(0, 10, 4))
for name, blk, layers, kw in (("basic", BasicBlock, [1, 1, 1, 1], dict(zero_init_residual=True)),
                              ("bottleneck", Bottleneck, [1, 1, 1, 1],
                               dict(groups=2, width_per_group=8, replace_stride_with_dilation=[False, True, True]))):
    torch.manual_seed(0)
    m = ResNet(blk, layers, num_classes=10, **kw).double()
    out[f"{name}_zero_init"] = [float(b.bn2.weight.abs().sum()) for b in (m.layer1[0], m.layer4[0])
                                if isinstance(b, BasicBlock)]
    with torch.no_grad():
        for k, p in enumerate(m.parameters()):
            scale = 1.0 if p.dim() == 1 else (2.0 / p[0].numel()) ** 0.5
            p.copy_(torch.from_numpy(np.random.default_rng(k).normal(0, scale, tuple(p.shape))))
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=4)
    crit = nn.CrossEntropyLoss(label_smoothing=0.1)
    log = []
    for i in range(3):
        opt.zero_grad()
        loss = crit(m(x), y)
        loss.backward()
        opt.step()
        sched.step()
        log.append([loss.item(), sched.get_last_lr()[0]])
    out[f"{name}_log"] = log
    out[f"{name}_running_var"] = m.bn1.running_var
    m.eval()
    with torch.inference_mode():
        out[f"{name}_eval_logits"] = m(x)
    out[f"{name}_state_keys"] = list(m.state_dict().keys())
