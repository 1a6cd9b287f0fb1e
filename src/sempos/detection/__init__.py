"""Object detection transfer (docs/science.md §4.5: MoCo's VOC Faster R-CNN R50-C4 protocol), two backends.

  scenes.py              a deterministic proxy dataset: Fashion-MNIST items pasted into small scenes
  voc.py                 PASCAL VOC07+12 boxes from the prepared index, JPEGs decoded on demand
  c4.py                  torchvision Faster R-CNN in Detectron2's C4 layout around our ResNets
  train.py               fine-tuning (one device, or DDP under torchrun); run_trials = MoCo's mean of N trials
  evaluate.py            AP/AP50/AP75 by the VOC devkit's rules and coco_* by pycocotools, same detections
  convert.py             backbone state dict -> Detectron2 names (MoCo's convert-pretrain-to-detectron2.py)
  detectron2_backend.py  the real MoCo VOC config, built in code; detectron2 is imported lazily

Submodules are imported on use so that `import sempos.detection` stays cheap.
"""
