from tapegrad import _C
