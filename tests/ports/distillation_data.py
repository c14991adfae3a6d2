# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# Part 1: the "Knowledge Distillation" tutorial: a teacher and a lighter student CNN; the
# soft-target loss written out (softmax / log_softmax at temperature T), then the cosine loss on
# flattened hidden representations average-pooled by avg_pool1d, then F.kl_div(batchmean).
# Part 2: "Datasets & DataLoaders" idioms: a map-style Dataset returning dicts, default collation of
# dicts, tuples, numbers, strings and numpy arrays, a collate_fn padding variable lengths with
# pad_sequence(batch_first=True), BatchSampler / SequentialSampler / SubsetRandomSampler /
# WeightedRandomSampler, batch_sampler=, drop_last, random_split with fractions and a Generator,
# Subset, ConcatDataset, an IterableDataset with get_worker_info, default_collate.
from collections import namedtuple

data_utils = torch.utils.data
device = "cpu"


class DeepNN(nn.Module):
    def __init__(self, num_classes=10):
        super(DeepNN, self).__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 8, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(8 * 4 * 4, 32),
            nn.ReLU(),
            nn.Dropout(0.0),
            nn.Linear(32, num_classes)
        )

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(x, 1)
        x = self.classifier(x)
        return x


class LightNN(nn.Module):
    def __init__(self, num_classes=10):
        super(LightNN, self).__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(4 * 4 * 4, 16),
            nn.ReLU(),
            nn.Dropout(0.0),
            nn.Linear(16, num_classes)
        )

    def forward(self, x):
        x = self.features(x)
        x = torch.flatten(x, 1)
        x = self.classifier(x)
        return x


class ModifiedDeepNNCosine(DeepNN):
    def forward(self, x):
        x = self.features(x)
        flattened_conv_output = torch.flatten(x, 1)
        x = self.classifier(flattened_conv_output)
        flattened_conv_output_after_pooling = torch.nn.functional.avg_pool1d(flattened_conv_output, 2)
        return x, flattened_conv_output_after_pooling


class ModifiedLightNNCosine(LightNN):
    def forward(self, x):
        x = self.features(x)
        flattened_conv_output = torch.flatten(x, 1)
        x = self.classifier(flattened_conv_output)
        return x, flattened_conv_output


def fill_(model, seed):
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(torch.from_numpy(np.random.default_rng(seed + i).uniform(-0.3, 0.3, tuple(p.shape))
                                     .astype(np.float32)))
    return model


rng = np.random.default_rng(0)
images = torch.from_numpy(rng.standard_normal((16, 3, 8, 8)).astype(np.float32))
labels = torch.from_numpy(rng.integers(0, 10, 16))
train_loader = DataLoader(TensorDataset(images, labels), batch_size=8, shuffle=False)


def train_knowledge_distillation(teacher, student, train_loader, epochs, learning_rate, T, soft_target_loss_weight,
                                 ce_loss_weight, device):
    ce_loss = nn.CrossEntropyLoss()
    optimizer = optim.Adam(student.parameters(), lr=learning_rate)

    teacher.eval()  # Teacher set to evaluation mode
    student.train() # Student to train mode
    log = []
    for epoch in range(epochs):
        running_loss = 0.0
        for inputs, labels in train_loader:
            inputs, labels = inputs.to(device), labels.to(device)

            optimizer.zero_grad()

            # Forward pass with the teacher model - do not save gradients here as we do not change the teacher's weights
            with torch.no_grad():
                teacher_logits = teacher(inputs)

            # Forward pass with the student model
            student_logits = student(inputs)

            #Soften the student logits by applying softmax first and log() second
            soft_targets = nn.functional.softmax(teacher_logits / T, dim=-1)
            soft_prob = nn.functional.log_softmax(student_logits / T, dim=-1)

            # Calculate the soft targets loss. Scaled by T**2 as suggested by the authors of the paper "Distilling the knowledge in a neural network"
            soft_targets_loss = torch.sum(soft_targets * (soft_targets.log() - soft_prob)) / soft_prob.size()[0] * (T**2)

            # Calculate the true label loss
            label_loss = ce_loss(student_logits, labels)

            # Weighted sum of the two losses
            loss = soft_target_loss_weight * soft_targets_loss + ce_loss_weight * label_loss

            loss.backward()
            optimizer.step()

            running_loss += loss.item()
        log.append(running_loss / len(train_loader))
    return log


def train_cosine_loss(teacher, student, train_loader, epochs, learning_rate, hidden_rep_loss_weight, ce_loss_weight,
                      device):
    ce_loss = nn.CrossEntropyLoss()
    cosine_loss = nn.CosineEmbeddingLoss()
    optimizer = optim.Adam(student.parameters(), lr=learning_rate)

    teacher.to(device)
    student.to(device)
    teacher.eval()  # Teacher set to evaluation mode
    student.train() # Student to train mode
    log = []
    for epoch in range(epochs):
        running_loss = 0.0
        for inputs, labels in train_loader:
            inputs, labels = inputs.to(device), labels.to(device)

            optimizer.zero_grad()

            # Forward pass with the teacher model and keep only the hidden representation
            with torch.no_grad():
                _, teacher_hidden_representation = teacher(inputs)

            # Forward pass with the student model
            student_logits, student_hidden_representation = student(inputs)

            # Calculate the cosine loss. Target is a vector of ones. From the loss formula above we can see that is the case where loss minimization leads to cosine similarity increase.
            hidden_rep_loss = cosine_loss(student_hidden_representation, teacher_hidden_representation, target=torch.ones(inputs.size(0)).to(device))

            # Calculate the true label loss
            label_loss = ce_loss(student_logits, labels)

            # Weighted sum of the two losses
            loss = hidden_rep_loss_weight * hidden_rep_loss + ce_loss_weight * label_loss

            loss.backward()
            optimizer.step()

            running_loss += loss.item()
        log.append(running_loss / len(train_loader))
    return log


def test(model, test_loader, device):
    model.to(device)
    model.eval()

    correct = 0
    total = 0

    with torch.no_grad():
        for inputs, labels in test_loader:
            inputs, labels = inputs.to(device), labels.to(device)

            outputs = model(inputs)
            if isinstance(outputs, tuple):
                outputs = outputs[0]
            _, predicted = torch.max(outputs.data, 1)

            total += labels.size(0)
            correct += (predicted == labels).sum().item()

    accuracy = 100 * correct / total
    return accuracy


torch.manual_seed(42)
teacher = fill_(DeepNN(num_classes=10).to(device), 0)
student = fill_(LightNN(num_classes=10).to(device), 100)
out["n_params"] = [sum(p.numel() for p in teacher.parameters()), sum(p.numel() for p in student.parameters())]
out["kd_log"] = train_knowledge_distillation(teacher=teacher, student=student, train_loader=train_loader, epochs=2,
                                             learning_rate=0.001, T=2, soft_target_loss_weight=0.25,
                                             ce_loss_weight=0.75, device=device)
out["kd_acc"] = test(student, train_loader, device)
cos_teacher = fill_(ModifiedDeepNNCosine(num_classes=10), 0)
cos_student = fill_(ModifiedLightNNCosine(num_classes=10), 100)
out["cos_log"] = train_cosine_loss(teacher=cos_teacher, student=cos_student, train_loader=train_loader, epochs=2,
                                   learning_rate=0.001, hidden_rep_loss_weight=0.25, ce_loss_weight=0.75,
                                   device=device)
out["cos_acc"] = test(cos_student, train_loader, device)
with torch.no_grad():
    s_logits, t_logits = student(images), teacher(images)
T = 4.0
out["kl_batchmean"] = F.kl_div(F.log_softmax(s_logits / T, dim=1), F.softmax(t_logits / T, dim=1),
                               reduction="batchmean") * T * T
out["kl_log_target"] = nn.KLDivLoss(reduction="batchmean", log_target=True)(F.log_softmax(s_logits, 1),
                                                                            F.log_softmax(t_logits, 1))


# ---------------------------------------------------------------- Datasets & DataLoaders
class CustomDataset(data_utils.Dataset):
    def __init__(self, n, transform=None, target_transform=None):
        self.values = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self):
        return len(self.values)

    def __getitem__(self, idx):
        if torch.is_tensor(idx):
            idx = idx.tolist()
        x = self.values[idx]
        label = int(idx % 3)
        if self.transform:
            x = self.transform(x)
        if self.target_transform:
            label = self.target_transform(label)
        return {"x": x, "label": label, "name": f"item{idx}", "pair": (idx, float(idx) / 2), "np": x * 2}


ds = CustomDataset(10, transform=torch.from_numpy)
batch = next(iter(DataLoader(ds, batch_size=4)))
out["dict_batch"] = [batch["x"], batch["label"], batch["name"], batch["pair"], batch["np"]]
out["dict_batch_types"] = [str(batch["label"].dtype).split(".")[-1], str(batch["pair"][1].dtype).split(".")[-1],
                           type(batch["np"]).__name__ == "Tensor"]
loader = DataLoader(ds, batch_size=4, drop_last=True)
out["drop_last"] = [len(loader), sum(1 for _ in loader)]
bs = list(data_utils.BatchSampler(data_utils.SequentialSampler(range(10)), batch_size=3, drop_last=False))
out["batch_sampler"] = bs
out["batch_sampler_len"] = [len(data_utils.BatchSampler(range(10), 3, False)), len(data_utils.BatchSampler(range(10), 3, True))]
loader = DataLoader(ds, batch_sampler=data_utils.BatchSampler(range(10), 4, True))
out["by_batch_sampler"] = [b["label"] for b in loader]
sub = sorted(data_utils.SubsetRandomSampler([1, 4, 7]))
out["subset_random"] = sub
w = data_utils.WeightedRandomSampler([0.0, 0.0, 1.0, 0.0], num_samples=5, replacement=True)
out["weighted"] = [len(w), list(w)]
g = torch.Generator().manual_seed(42)
train_set, val_set = data_utils.random_split(ds, [0.7, 0.3], generator=g)
out["random_split"] = [len(train_set), len(val_set), sorted(train_set.indices + val_set.indices) == list(range(10))]
a, b, c = data_utils.random_split(range(10), [3, 3, 4])
out["random_split_ints"] = [len(a), len(b), len(c), type(a).__name__]
subset = data_utils.Subset(ds, [0, 2])
out["subset"] = [len(subset), subset[1]["name"]]
cat = data_utils.ConcatDataset([TensorDataset(torch.arange(3)), TensorDataset(torch.arange(10, 14))])
out["concat"] = [len(cat), cat[4][0], cat.cumulative_sizes]


def collate_pad(batch):
    seqs, ys = zip(*batch)
    lengths = torch.tensor([len(s) for s in seqs])
    padded = nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=-1)
    return padded, lengths, torch.stack(ys)


varlen = [(torch.arange(n), torch.tensor(float(n))) for n in (3, 1, 4, 2)]
out["collate_fn"] = list(next(iter(DataLoader(varlen, batch_size=4, collate_fn=collate_pad))))


class Stream(data_utils.IterableDataset):
    def __init__(self, start, end):
        super().__init__()
        self.start, self.end = start, end

    def __iter__(self):
        worker_info = torch.utils.data.get_worker_info()
        assert worker_info is None  # single-process loading
        return iter(range(self.start, self.end))


out["iterable"] = [t for t in DataLoader(Stream(3, 10), batch_size=3)]
Point = namedtuple("Point", ["x", "y"])
col = data_utils.default_collate([Point(1, 2.0), Point(3, 4.0)])
out["namedtuple_collate"] = [type(col).__name__, col.x, col.y]
out["default_collate_nested"] = data_utils.default_collate([[torch.ones(2), 1], [torch.zeros(2), 2]])
