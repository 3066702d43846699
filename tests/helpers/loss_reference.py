"""Straightforward numpy/scipy versions of the distance losses, image by image and class by
class, written from the formulas in the losses' docstrings (the tests' reference)."""
import numpy as np
from scipy import ndimage


def edt(mask):
    """scipy's EDT with the op's convention: +inf everywhere when there is no zero pixel."""
    mask = np.asarray(mask, dtype=bool)
    if mask.all():
        return np.full(mask.shape, np.inf)
    return ndimage.distance_transform_edt(mask)


def softmax(x, axis=0):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def lossd(logits, target, ignore=255, class_weights=None, over_weight=1.0, under_weight=1.0,
          reduction="mean"):
    """DistanceLoss's formula; also returns d loss / d softmax (the straight-through gradient)."""
    logits, target = np.asarray(logits, np.float64), np.asarray(target)
    B, K = logits.shape[:2]
    w = np.ones(K) if class_weights is None else np.asarray(class_weights, np.float64)
    per_image, counted = np.zeros(B), np.zeros(B, bool)
    dprob = np.zeros_like(logits)
    for b in range(B):
        valid = target[b] != ignore
        n = valid.sum()
        pred = logits[b].argmax(0)
        masks = [(target[b] == k) & valid for k in range(K)]
        d_in = [edt(m) for m in masks]
        d_out = [edt(~m) for m in masks]
        big = 1.0
        labels = np.where(valid, target[b], -1)
        for j in np.unique(labels):
            big = max(big, edt(labels != j).max())

        def c(d, big=big):
            return np.log1p(np.minimum(d, big)) / np.log1p(big)

        num = den = 0.0
        coeff = np.zeros_like(logits[b])
        for k in range(K):
            fp = (pred == k) & ~masks[k] & valid
            fn = (pred != k) & masks[k]
            present = masks[k].any() or ((pred == k) & valid).any()
            if n == 0 or not present:
                continue
            term = (over_weight * c(d_out[k])[fp].sum() + under_weight * c(d_in[k])[fn].sum()) / n
            num += w[k] * term
            den += w[k]
            coeff[k] = w[k] * (over_weight * np.where(~masks[k] & valid, c(d_out[k]), 0)
                               - under_weight * np.where(masks[k], c(d_in[k]), 0)) / n
        if den > 0:
            per_image[b] = num / den
            dprob[b] = coeff / den
            counted[b] = True
    if reduction == "none":
        return per_image, dprob
    if reduction == "sum":
        return per_image.sum(), dprob
    m = max(counted.sum(), 1)
    return per_image.sum() / m, dprob / m


def signed_distance(g):
    """Kervadec's phi for one binary mask; 0 when the class is empty or fills the image."""
    g = np.asarray(g, bool)
    if not g.any() or g.all():
        return np.zeros(g.shape)
    return edt(~g) * ~g - (edt(g) - 1) * g


def boundary_field(g):
    """Karimi's distance-to-boundary field: edt(fg) + edt(bg), 0 without a boundary."""
    g = np.asarray(g, bool)
    if not g.any() or g.all():
        return np.zeros(g.shape)
    return edt(g) + edt(~g)


def boundary_loss(logits, target, ignore=255, classes=None):
    logits, target = np.asarray(logits, np.float64), np.asarray(target)
    B, K = logits.shape[:2]
    classes = range(K) if classes is None else classes
    total, count = 0.0, 0
    for b in range(B):
        valid = target[b] != ignore
        p = softmax(logits[b])
        for k in classes:
            phi = signed_distance((target[b] == k) & valid)
            total += (p[k] * phi)[valid].sum()
        count += valid.sum() * len(classes)
    return total / count if count else 0.0


def hausdorff_loss(logits, target, ignore=255, alpha=2.0, classes=None):
    logits, target = np.asarray(logits, np.float64), np.asarray(target)
    B, K = logits.shape[:2]
    classes = range(K) if classes is None else classes
    total, count = 0.0, 0
    for b in range(B):
        valid = target[b] != ignore
        p = softmax(logits[b])
        pred = logits[b].argmax(0)
        for k in classes:
            g = (target[b] == k) & valid
            dist = boundary_field(g) ** alpha + boundary_field((pred == k) & valid) ** alpha
            total += ((p[k] - g) ** 2 * dist)[valid].sum()
        count += valid.sum() * len(classes)
    return total / count if count else 0.0
