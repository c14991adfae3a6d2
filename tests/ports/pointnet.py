# A PyTorch-style script, run by tests/test_ports_vs_torch.py with torch or tapegrad bound to the
# same names (torch, nn, F, optim, DataLoader, TensorDataset, np); results go into `out`.
# fxia22/pointnet.pytorch: pointnet/model.py as written (STN3d and STNkd T-nets with Conv1d(k=1)
# + BatchNorm1d, max-pool over points by torch.max(x, 2, keepdim=True)[0], the identity added via
# Variable(torch.from_numpy(...)).view(1, 9).repeat(batchsize, 1), bmm of the points with the
# predicted transform, PointNetCls and PointNetDenseCls, feature_transform_regularizer with
# torch.norm over dim=(1, 2)) and the train_classification.py / train_segmentation.py steps (Adam,
# StepLR, nll_loss, the feature-transform penalty, pred.data.max(1)[1] accuracy, eval on a test
# batch). The widths (64/128/1024/512/256) are divided by 8 and the clouds are 32 points;
# dropout is 0 so both runs make the same forward passes. The models run in float64 (.double()):
# in float32 the T-net's gradients go through five BatchNorms on batches of 4 and differ between
# the frameworks by rounding alone (float64 agrees to 1e-9); the float32 identity matrices of
# the original meet float64 activations, as they would under model.double().
Variable = torch.autograd.Variable  # from torch.autograd import Variable

C1, C2, C3, F1, F2 = 8, 16, 128, 64, 32  # 64, 128, 1024, 512, 256 in the original


class STN3d(nn.Module):
    def __init__(self):
        super(STN3d, self).__init__()
        self.conv1 = torch.nn.Conv1d(3, C1, 1)
        self.conv2 = torch.nn.Conv1d(C1, C2, 1)
        self.conv3 = torch.nn.Conv1d(C2, C3, 1)
        self.fc1 = nn.Linear(C3, F1)
        self.fc2 = nn.Linear(F1, F2)
        self.fc3 = nn.Linear(F2, 9)
        self.relu = nn.ReLU()

        self.bn1 = nn.BatchNorm1d(C1)
        self.bn2 = nn.BatchNorm1d(C2)
        self.bn3 = nn.BatchNorm1d(C3)
        self.bn4 = nn.BatchNorm1d(F1)
        self.bn5 = nn.BatchNorm1d(F2)

    def forward(self, x):
        batchsize = x.size()[0]
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        x = torch.max(x, 2, keepdim=True)[0]
        x = x.view(-1, C3)

        x = F.relu(self.bn4(self.fc1(x)))
        x = F.relu(self.bn5(self.fc2(x)))
        x = self.fc3(x)

        iden = Variable(torch.from_numpy(np.array([1,0,0,0,1,0,0,0,1]).astype(np.float32))).view(1,9).repeat(batchsize,1)
        if x.is_cuda:
            iden = iden.cuda()
        x = x + iden
        x = x.view(-1, 3, 3)
        return x


class STNkd(nn.Module):
    def __init__(self, k=64):
        super(STNkd, self).__init__()
        self.conv1 = torch.nn.Conv1d(k, C1, 1)
        self.conv2 = torch.nn.Conv1d(C1, C2, 1)
        self.conv3 = torch.nn.Conv1d(C2, C3, 1)
        self.fc1 = nn.Linear(C3, F1)
        self.fc2 = nn.Linear(F1, F2)
        self.fc3 = nn.Linear(F2, k*k)
        self.relu = nn.ReLU()

        self.bn1 = nn.BatchNorm1d(C1)
        self.bn2 = nn.BatchNorm1d(C2)
        self.bn3 = nn.BatchNorm1d(C3)
        self.bn4 = nn.BatchNorm1d(F1)
        self.bn5 = nn.BatchNorm1d(F2)

        self.k = k

    def forward(self, x):
        batchsize = x.size()[0]
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        x = torch.max(x, 2, keepdim=True)[0]
        x = x.view(-1, C3)

        x = F.relu(self.bn4(self.fc1(x)))
        x = F.relu(self.bn5(self.fc2(x)))
        x = self.fc3(x)

        iden = Variable(torch.from_numpy(np.eye(self.k).flatten().astype(np.float32))).view(1,self.k*self.k).repeat(batchsize,1)
        if x.is_cuda:
            iden = iden.cuda()
        x = x + iden
        x = x.view(-1, self.k, self.k)
        return x


class PointNetfeat(nn.Module):
    def __init__(self, global_feat = True, feature_transform = False):
        super(PointNetfeat, self).__init__()
        self.stn = STN3d()
        self.conv1 = torch.nn.Conv1d(3, C1, 1)
        self.conv2 = torch.nn.Conv1d(C1, C2, 1)
        self.conv3 = torch.nn.Conv1d(C2, C3, 1)
        self.bn1 = nn.BatchNorm1d(C1)
        self.bn2 = nn.BatchNorm1d(C2)
        self.bn3 = nn.BatchNorm1d(C3)
        self.global_feat = global_feat
        self.feature_transform = feature_transform
        if self.feature_transform:
            self.fstn = STNkd(k=C1)

    def forward(self, x):
        n_pts = x.size()[2]
        trans = self.stn(x)
        x = x.transpose(2, 1)
        x = torch.bmm(x, trans)
        x = x.transpose(2, 1)
        x = F.relu(self.bn1(self.conv1(x)))

        if self.feature_transform:
            trans_feat = self.fstn(x)
            x = x.transpose(2,1)
            x = torch.bmm(x, trans_feat)
            x = x.transpose(2,1)
        else:
            trans_feat = None

        pointfeat = x
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.bn3(self.conv3(x))
        x = torch.max(x, 2, keepdim=True)[0]
        x = x.view(-1, C3)
        if self.global_feat:
            return x, trans, trans_feat
        else:
            x = x.view(-1, C3, 1).repeat(1, 1, n_pts)
            return torch.cat([x, pointfeat], 1), trans, trans_feat


class PointNetCls(nn.Module):
    def __init__(self, k=2, feature_transform=False):
        super(PointNetCls, self).__init__()
        self.feature_transform = feature_transform
        self.feat = PointNetfeat(global_feat=True, feature_transform=feature_transform)
        self.fc1 = nn.Linear(C3, F1)
        self.fc2 = nn.Linear(F1, F2)
        self.fc3 = nn.Linear(F2, k)
        self.dropout = nn.Dropout(p=0.0)  # p=0.3 in the original
        self.bn1 = nn.BatchNorm1d(F1)
        self.bn2 = nn.BatchNorm1d(F2)
        self.relu = nn.ReLU()

    def forward(self, x):
        x, trans, trans_feat = self.feat(x)
        x = F.relu(self.bn1(self.fc1(x)))
        x = F.relu(self.bn2(self.dropout(self.fc2(x))))
        x = self.fc3(x)
        return F.log_softmax(x, dim=1), trans, trans_feat


class PointNetDenseCls(nn.Module):
    def __init__(self, k = 2, feature_transform=False):
        super(PointNetDenseCls, self).__init__()
        self.k = k
        self.feature_transform=feature_transform
        self.feat = PointNetfeat(global_feat=False, feature_transform=feature_transform)
        self.conv1 = torch.nn.Conv1d(C3 + C1, F1, 1)
        self.conv2 = torch.nn.Conv1d(F1, F2, 1)
        self.conv3 = torch.nn.Conv1d(F2, C2, 1)
        self.conv4 = torch.nn.Conv1d(C2, self.k, 1)
        self.bn1 = nn.BatchNorm1d(F1)
        self.bn2 = nn.BatchNorm1d(F2)
        self.bn3 = nn.BatchNorm1d(C2)

    def forward(self, x):
        batchsize = x.size()[0]
        n_pts = x.size()[2]
        x, trans, trans_feat = self.feat(x)
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        x = self.conv4(x)
        x = x.transpose(2,1).contiguous()
        x = F.log_softmax(x.view(-1,self.k), dim=-1)
        x = x.view(batchsize, n_pts, self.k)
        return x, trans, trans_feat


def feature_transform_regularizer(trans):
    d = trans.size()[1]
    batchsize = trans.size()[0]
    I = torch.eye(d)[None, :, :]
    if trans.is_cuda:
        I = I.cuda()
    loss = torch.mean(torch.norm(torch.bmm(trans, trans.transpose(2,1)) - I, dim=(1,2)))
    return loss


def fill(model, seed):
    with torch.no_grad():
        for k, p in enumerate(model.parameters()):
            p.copy_(torch.from_numpy(np.random.default_rng(seed + k).normal(0, 0.2, tuple(p.shape))))


rng = np.random.default_rng(11)
num_classes, num_seg = 3, 4
points_all = torch.from_numpy(rng.standard_normal((12, 32, 3)))
cls_all = torch.from_numpy(rng.integers(0, num_classes, (12, 1)))
seg_all = torch.from_numpy(rng.integers(0, num_seg, (12, 32)))
dataloader = DataLoader(TensorDataset(points_all[:8], cls_all[:8], seg_all[:8]), batch_size=4, shuffle=False)

# ---- train_classification.py
classifier = PointNetCls(k=num_classes, feature_transform=True).double()
fill(classifier, 0)
optimizer = optim.Adam(classifier.parameters(), lr=0.001, betas=(0.9, 0.999))
scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
cls_log = []
for epoch in range(2):
    for i, data in enumerate(dataloader, 0):
        points, target, _ = data
        target = target[:, 0]
        points = points.transpose(2, 1)
        optimizer.zero_grad()
        classifier = classifier.train()
        pred, trans, trans_feat = classifier(points)
        loss = F.nll_loss(pred, target)
        if classifier.feature_transform:
            loss += feature_transform_regularizer(trans_feat) * 0.001
        loss.backward()
        if epoch == 0 and i == 0:
            out["cls_grads0"] = {n: p.grad.clone() for n, p in classifier.named_parameters()}
            out["cls_trans"] = trans
            out["cls_trans_feat"] = trans_feat
        optimizer.step()
        pred_choice = pred.data.max(1)[1]
        correct = pred_choice.eq(target.data).cpu().sum()
        cls_log.append((loss.item(), correct.item() / float(points.size(0))))
    scheduler.step()
out["cls_log"] = cls_log
out["cls_bn_running"] = [classifier.feat.bn3.running_mean, classifier.feat.stn.bn5.running_var,
                         classifier.feat.bn1.num_batches_tracked]

points, target = points_all[8:].transpose(2, 1), cls_all[8:, 0]
classifier = classifier.eval()
pred, _, _ = classifier(points)
out["cls_eval_pred"] = pred
out["cls_eval_loss"] = F.nll_loss(pred, target).item()

# ---- train_segmentation.py
classifier = PointNetDenseCls(k=num_seg, feature_transform=False).double()
fill(classifier, 500)
optimizer = optim.Adam(classifier.parameters(), lr=0.001, betas=(0.9, 0.999))
seg_log = []
for i, data in enumerate(dataloader, 0):
    points, _, target = data
    points = points.transpose(2, 1)
    optimizer.zero_grad()
    classifier = classifier.train()
    pred, trans, trans_feat = classifier(points)
    pred = pred.view(-1, num_seg)
    target = target.view(-1, 1)[:, 0] - 0
    loss = F.nll_loss(pred, target)
    loss.backward()
    optimizer.step()
    pred_choice = pred.data.max(1)[1]
    correct = pred_choice.eq(target.data).cpu().sum()
    seg_log.append((loss.item(), correct.item() / float(points.size(0) * 32)))
out["seg_log"] = seg_log
out["seg_trans_feat_none"] = trans_feat is None
out["seg_params"] = [p.detach() for p in classifier.parameters()]
